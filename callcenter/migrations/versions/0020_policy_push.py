"""proactive policy push (issue #12 §20–21): enterprise profiles, the push log, its opens

- enterprise: the profile the matcher reads (GB/T 4754 code, employees, revenue, assets, the
  derived size band, region, tags), the mobile pushes go to, and the opt-out with its time
- policy_push_run: a push requested (on publish, by staff, or for one new enterprise); the
  scheduler queues an unfinished one again
- policy_push: one policy told to one enterprise, unique per pair (never pushed twice)
- policy_push_open: every open of a pushed link
- ticket_policy: a ticket about a policy linked to it

Revision ID: 0020_policy_push
Revises: 0019_assessment
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0020_policy_push"
down_revision: str | Sequence[str] | None = "0019_assessment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("enterprise") as b:
        b.add_column(sa.Column("industry_code", S(length=5), nullable=True))
        b.add_column(sa.Column("employees", sa.Integer(), nullable=True))
        b.add_column(sa.Column("revenue", sa.Float(), nullable=True))
        b.add_column(sa.Column("assets", sa.Float(), nullable=True))
        b.add_column(sa.Column("size_band", S(length=8), nullable=True))
        b.add_column(sa.Column("region", S(length=50), nullable=True))
        b.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        b.add_column(sa.Column("push_mobile", S(length=20), nullable=True))
        b.add_column(
            sa.Column("push_opt_out", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        b.add_column(sa.Column("push_opt_out_at", TZ, nullable=True))
        b.add_column(sa.Column("profile_updated_at", TZ, nullable=True))
        b.add_column(sa.Column("profile_updated_by", S(length=64), nullable=True))
        b.create_index("ix_enterprise_industry_code", ["industry_code"])
        b.create_index("ix_enterprise_size_band", ["size_band"])
        b.create_index("ix_enterprise_region", ["region"])
    op.create_table(
        "policy_push_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey("kb_article.id"), nullable=True),
        sa.Column("enterprise_id", sa.Integer(), sa.ForeignKey("enterprise.id"), nullable=True),
        sa.Column("requested_by", S(length=64), nullable=False),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
    )
    op.create_index("ix_policy_push_run_article_id", "policy_push_run", ["article_id"])
    op.create_index("ix_policy_push_run_finished_at", "policy_push_run", ["finished_at"])
    op.create_table(
        "policy_push",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey("kb_article.id"), nullable=False),
        sa.Column("enterprise_id", sa.Integer(), sa.ForeignKey("enterprise.id"), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("policy_push_run.id"), nullable=True),
        sa.Column("status", S(length=12), nullable=False),
        sa.Column("skip_reason", S(length=20), nullable=True),
        sa.Column("token_digest", S(length=64), nullable=True),
        sa.Column("outbox_id", sa.Integer(), sa.ForeignKey("outboxmessage.id"), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("first_opened_at", TZ, nullable=True),
        sa.Column("open_count", sa.Integer(), nullable=False),
        sa.UniqueConstraint(
            "article_id", "enterprise_id", name="uq_policy_push_article_enterprise"
        ),
        sa.UniqueConstraint("token_digest"),
    )
    op.create_index("ix_policy_push_enterprise_id", "policy_push", ["enterprise_id"])
    op.create_index("ix_policy_push_status_article", "policy_push", ["status", "article_id"])
    op.create_table(
        "policy_push_open",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("push_id", sa.Integer(), sa.ForeignKey("policy_push.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_policy_push_open_push_id", "policy_push_open", ["push_id"])
    op.create_table(
        "ticket_policy",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey("kb_article.id"), nullable=False),
        sa.Column("linked_by", S(length=64), nullable=False),
        sa.Column("linked_at", TZ, nullable=False),
        sa.UniqueConstraint("ticket_id", "article_id", name="uq_ticket_policy"),
    )
    op.create_index("ix_ticket_policy_ticket_id", "ticket_policy", ["ticket_id"])
    op.create_index("ix_ticket_policy_article_id", "ticket_policy", ["article_id"])


def downgrade() -> None:
    op.drop_table("ticket_policy")
    op.drop_table("policy_push_open")
    op.drop_table("policy_push")
    op.drop_table("policy_push_run")
    with op.batch_alter_table("enterprise") as b:
        b.drop_index("ix_enterprise_region")
        b.drop_index("ix_enterprise_size_band")
        b.drop_index("ix_enterprise_industry_code")
        for c in (
            "profile_updated_by",
            "profile_updated_at",
            "push_opt_out_at",
            "push_opt_out",
            "push_mobile",
            "tags",
            "region",
            "size_band",
            "assets",
            "revenue",
            "employees",
            "industry_code",
        ):
            b.drop_column(c)
