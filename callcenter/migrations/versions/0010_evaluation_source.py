"""Issue #17 (sections 2, 6): the submitter's secrets never reach staff, evaluations say who gave
them, and usernames are unique regardless of case.

- notice: `sent_body` (what the submitter was given), `evaluation_token` (SHA-256 of the evaluation
  token, unique); existing confirm tokens are replaced by their SHA-256 digest (the links already
  sent keep working) and existing bodies are copied to sent_body and redacted in `body`. Notices
  written before this revision get no evaluation token: their confirm token had been shown to
  staff, so it must not authorise an evaluation (those tickets are rated by 回访 or a new link).
- evaluation: `source` (submitter | staff), `channel` (link | sms | callback), `superseded`; one
  per (ticket, round, source) instead of one per (ticket, round). Rows by "public" become
  submitter/link, all others staff/callback.
- user: a unique index on lower(username) (refused, with the names, if duplicates exist).
- playbacklog: `what` (audio | transcript): transcript reads are logged like playback.

Revision ID: 0010_evaluation_source
Revises: 0008_fts_automerge
Create Date: 2026-12-06
"""

import hashlib
import re
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_evaluation_source"
down_revision: str | Sequence[str] | None = "0009_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REDACTED = "[已隐去]"
_LINK_TOKEN = re.compile(r"(/public/notices/)[^/\s]+(/confirm)|([?&]token=)[^&\s]+")


def _redact(text: str) -> str:
    return _LINK_TOKEN.sub(
        lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}" if m.group(1) else m.group(3) + REDACTED,
        text,
    )


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sent_body", sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "evaluation_token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )
        batch_op.create_index(
            batch_op.f("ix_notice_evaluation_token"), ["evaluation_token"], unique=True
        )
    notice = sa.table(
        "notice",
        sa.column("id", sa.Integer),
        sa.column("body", sa.String),
        sa.column("sent_body", sa.String),
        sa.column("confirm_token", sa.String),
    )
    rows = bind.execute(sa.select(notice.c.id, notice.c.body, notice.c.confirm_token)).all()
    for nid, body, token in rows:
        bind.execute(
            notice.update()
            .where(notice.c.id == nid)
            .values(
                sent_body=body,
                body=_redact(body),
                confirm_token=hashlib.sha256(token.encode()).hexdigest(),
            )
        )

    with op.batch_alter_table("evaluation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source",
                sqlmodel.sql.sqltypes.AutoString(length=12),
                nullable=False,
                server_default="staff",
            )
        )
        batch_op.add_column(
            sa.Column(
                "channel",
                sqlmodel.sql.sqltypes.AutoString(length=12),
                nullable=False,
                server_default="callback",
            )
        )
        batch_op.add_column(
            sa.Column("superseded", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.drop_constraint("uq_evaluation_round", type_="unique")
        batch_op.create_unique_constraint(
            "uq_evaluation_round_source", ["ticket_id", "round", "source"]
        )
    op.execute(
        "UPDATE evaluation SET source = 'submitter', channel = 'link' WHERE submitted_by = 'public'"
    )
    with op.batch_alter_table("evaluation", schema=None) as batch_op:
        batch_op.alter_column("source", server_default=None)
        batch_op.alter_column("channel", server_default=None)
        batch_op.alter_column("superseded", server_default=None)

    dupes = bind.execute(
        sa.text('SELECT lower(username) FROM "user" GROUP BY lower(username) HAVING count(*) > 1')
    ).all()
    if dupes:
        names = ", ".join(r[0] for r in dupes)
        raise RuntimeError(
            f"usernames that differ only in case exist ({names}): rename or deactivate and rename "
            "them, then upgrade again / 存在仅大小写不同的用户名，请先改名后再升级"
        )
    op.execute('CREATE UNIQUE INDEX ix_user_username_ci ON "user" (lower(username))')

    with op.batch_alter_table("playbacklog", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "what",
                sqlmodel.sql.sqltypes.AutoString(length=12),
                nullable=False,
                server_default="audio",
            )
        )
    with op.batch_alter_table("playbacklog", schema=None) as batch_op:
        batch_op.alter_column("what", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("playbacklog", schema=None) as batch_op:
        batch_op.drop_column("what")
    op.execute("DROP INDEX IF EXISTS ix_user_username_ci")
    op.execute("DELETE FROM evaluation WHERE superseded")
    op.execute(
        "DELETE FROM evaluation WHERE source = 'staff' AND EXISTS (SELECT 1 FROM evaluation e2 "
        "WHERE e2.ticket_id = evaluation.ticket_id AND e2.round = evaluation.round "
        "AND e2.source = 'submitter')"
    )
    with op.batch_alter_table("evaluation", schema=None) as batch_op:
        batch_op.drop_constraint("uq_evaluation_round_source", type_="unique")
        batch_op.create_unique_constraint("uq_evaluation_round", ["ticket_id", "round"])
        batch_op.drop_column("superseded")
        batch_op.drop_column("channel")
        batch_op.drop_column("source")
    # the confirm tokens stay hashed (the raw ones are gone): old links stop working
    op.execute("UPDATE notice SET body = sent_body WHERE sent_body IS NOT NULL")
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_evaluation_token"))
        batch_op.drop_column("evaluation_token")
        batch_op.drop_column("sent_body")
