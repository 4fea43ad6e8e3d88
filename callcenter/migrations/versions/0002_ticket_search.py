"""ticket search: full-text over title+content, and the call_id lookup used by intake dedupe

SQLite: an external-content FTS5 table with the trigram tokenizer (Chinese substrings of 3+
characters), kept in sync by triggers. PostgreSQL: pg_trgm GIN indexes serving ILIKE; if the
extension cannot be created (no privilege), search still works by sequential ILIKE and a warning
is printed.

Caution for later SQLite migrations: a batch ("move and copy") rebuild of `ticket` drops these
triggers; re-create them (see TRIGGERS) and run the FTS 'rebuild' afterwards.

Revision ID: 0002_search
Revises: 0001_ticketing
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_search"
down_revision: str | Sequence[str] | None = "0001_ticketing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = (
    """CREATE TRIGGER ticket_fts_ai AFTER INSERT ON ticket BEGIN
         INSERT INTO ticket_fts(rowid, title, content) VALUES (new.id, new.title, new.content);
       END""",
    """CREATE TRIGGER ticket_fts_ad AFTER DELETE ON ticket BEGIN
         INSERT INTO ticket_fts(ticket_fts, rowid, title, content)
         VALUES ('delete', old.id, old.title, old.content);
       END""",
    """CREATE TRIGGER ticket_fts_au AFTER UPDATE OF title, content ON ticket BEGIN
         INSERT INTO ticket_fts(ticket_fts, rowid, title, content)
         VALUES ('delete', old.id, old.title, old.content);
         INSERT INTO ticket_fts(rowid, title, content) VALUES (new.id, new.title, new.content);
       END""",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE ticket_fts USING fts5("
            "title, content, content='ticket', content_rowid='id', tokenize='trigram')"
        )
        for ddl in TRIGGERS:
            op.execute(ddl)
        op.execute("INSERT INTO ticket_fts(ticket_fts) VALUES ('rebuild')")
        op.execute(
            "CREATE INDEX ix_ticket_call_id ON ticket (json_extract(channel_data, '$.call_id'))"
        )
    elif bind.dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_ticket_call_id ON ticket ((channel_data ->> 'call_id'))")
        if _ensure_pg_trgm(bind):
            op.execute("CREATE INDEX ix_ticket_title_trgm ON ticket USING gin (title gin_trgm_ops)")
            op.execute(
                "CREATE INDEX ix_ticket_content_trgm ON ticket USING gin (content gin_trgm_ops)"
            )


def _ensure_pg_trgm(bind) -> bool:
    installed = bind.execute(
        sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    ).first()
    if installed:
        return True
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        return True
    except sa.exc.DBAPIError as e:
        print(f"warning: pg_trgm unavailable ({e.orig}); ticket search will scan without an index")
        return False


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("ticket_fts_ai", "ticket_fts_ad", "ticket_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS ticket_fts")
        op.execute("DROP INDEX IF EXISTS ix_ticket_call_id")
    elif bind.dialect.name == "postgresql":
        for name in ("ix_ticket_title_trgm", "ix_ticket_content_trgm", "ix_ticket_call_id"):
            op.execute(f"DROP INDEX IF EXISTS {name}")
