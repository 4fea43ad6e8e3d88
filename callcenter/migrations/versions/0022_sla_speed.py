"""§13 scan speed (issue #11): each clock's level boundaries stored; the unit head flag

- suborder / ticket: sla_blue_at, sla_yellow_at, sla_red_at, sla_overdue_at: the instants at which
  each level starts to hold on the clock's current step, computed once in Python when the step
  starts (working-time arithmetic stays in ticketing.worktime); sla_bounds_step: the step they
  belong to (NULL: not computed yet, the next scan round computes them). With them the full scan
  is one set-based UPDATE (ticketing.sla_scan.full_scan).
- user.is_head: the department's head (单位负责人), who acknowledges 督办.

Revision ID: 0022_sla_speed
Revises: 0021_hotspots
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_sla_speed"
down_revision: str | Sequence[str] | None = "0021_hotspots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_BOUNDS = ("sla_blue_at", "sla_yellow_at", "sla_red_at", "sla_overdue_at")


def upgrade() -> None:
    for table in ("suborder", "ticket"):
        with op.batch_alter_table(table, schema=None) as b:
            for name in _BOUNDS:
                b.add_column(sa.Column(name, _TS, nullable=True))
            b.add_column(sa.Column("sla_bounds_step", sa.String(length=8), nullable=True))
    # A plain ADD COLUMN: a batch copy of "user" on SQLite would drop its expression index
    # ix_user_username_ci (unique lower(username), migration 0010), which reflection skips.
    op.add_column(
        "user", sa.Column("is_head", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as b:
        b.drop_column("is_head")
    if op.get_bind().dialect.name == "sqlite":  # the batch copy dropped it (see upgrade)
        op.execute(
            'CREATE UNIQUE INDEX IF NOT EXISTS ix_user_username_ci ON "user" (lower(username))'
        )
    for table in ("ticket", "suborder"):
        with op.batch_alter_table(table, schema=None) as b:
            b.drop_column("sla_bounds_step")
            for name in reversed(_BOUNDS):
                b.drop_column(name)
