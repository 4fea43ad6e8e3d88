"""§13–15 clocks, warnings and escalation (issue #11)

- ticket.sla_next_at, suborder.sla_next_at (indexed): the next instant a warning level can change;
  the incremental scan reads only rows whose time has come. Open rows get "now" so the first
  scan evaluates them; closed ones stay NULL.
- suborder.accept_due_at (the 签收 clock), suborder.warning / warning_step (a sub-order's level on
  its current step).
- escalation: 催办 / 督办 / 专办 records, with a unique dedup_key for the automatic ones.

Revision ID: 0014_sla_clocks
Revises: 0013_knowledge
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_sla_clocks"
down_revision: str | Sequence[str] | None = "0013_knowledge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as b:
        b.add_column(sa.Column("sla_next_at", _TS, nullable=True))
        b.create_index("ix_ticket_sla_next_at", ["sla_next_at"], unique=False)
    with op.batch_alter_table("suborder", schema=None) as b:
        b.add_column(sa.Column("accept_due_at", _TS, nullable=True))
        b.add_column(
            sa.Column("warning", sa.String(length=8), nullable=False, server_default="none")
        )
        b.add_column(sa.Column("warning_step", sa.String(length=8), nullable=True))
        b.add_column(sa.Column("sla_next_at", _TS, nullable=True))
        b.create_index("ix_suborder_sla_next_at", ["sla_next_at"], unique=False)
    op.execute(
        "UPDATE ticket SET sla_next_at = CURRENT_TIMESTAMP "
        "WHERE status IN ('pending_dispatch', 'dispatched', 'reopened')"
    )
    op.execute(
        "UPDATE suborder SET sla_next_at = CURRENT_TIMESTAMP "
        "WHERE status IN ('dispatched', 'accepted', 'extension_requested')"
    )
    op.create_table(
        "escalation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("suborder_id", sa.Integer(), sa.ForeignKey("suborder.id"), nullable=True),
        sa.Column("department_code", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("step", sa.String(length=8), nullable=False),
        sa.Column("trigger", sa.String(length=12), nullable=False),
        sa.Column("dedup_key", sa.String(length=160), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("due_at", _TS, nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("coordinator", sa.String(length=100), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("notify_after", _TS, nullable=True),
        sa.Column("notified_at", _TS, nullable=True),
    )
    op.create_index("ix_escalation_ticket_id", "escalation", ["ticket_id"])
    op.create_index("ix_escalation_dedup_key", "escalation", ["dedup_key"], unique=True)
    op.create_index("ix_escalation_notify_after", "escalation", ["notify_after"])
    op.create_index("ix_escalation_kind_status", "escalation", ["kind", "status", "created_at"])
    op.create_index(
        "ix_escalation_dept_kind_status", "escalation", ["department_code", "kind", "status"]
    )


def downgrade() -> None:
    op.drop_table("escalation")
    with op.batch_alter_table("suborder", schema=None) as b:
        b.drop_index("ix_suborder_sla_next_at")
        b.drop_column("sla_next_at")
        b.drop_column("warning_step")
        b.drop_column("warning")
        b.drop_column("accept_due_at")
    with op.batch_alter_table("ticket", schema=None) as b:
        b.drop_index("ix_ticket_sla_next_at")
        b.drop_column("sla_next_at")
