"""issue #18, the closed loop's loose ends

- suborder: `role` (lead 主办 | assist 协办 | NULL), a return's handling (`return_handled_at`,
  `return_resolution` redispatched | closed, `return_note`) and an assisting department's release
  (`released_at`, `release_reason`; status "released").
- ticket: `conduct` + `conduct_accused` (作风投诉, never sent to the accused), `duplicate_of_id`
  (重复件, indexed; no foreign key, so SQLite can add and drop it in place) and `simulated` (demo tickets, 模拟); ix_ticket_phone_created for the
  duplicate lookup by phone.

Returns recorded before this revision count as handled (they were looked at under the old rule).

Revision ID: 0015_loop
Revises: 0014_sla_clocks
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015_loop"
down_revision: str | Sequence[str] | None = "0014_sla_clocks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # plain ADD COLUMN, never a batch (table copy) on SQLite: the copy would drop the ticket
    # table's hand-made expression index (ix_ticket_call_id) and its full-text triggers
    op.add_column("suborder", sa.Column("role", _S(length=8), nullable=True))
    op.add_column("suborder", sa.Column("return_handled_at", sa.DateTime(timezone=True)))
    op.add_column("suborder", sa.Column("return_resolution", _S(length=16), nullable=True))
    op.add_column("suborder", sa.Column("return_note", _S(length=1000), nullable=True))
    op.add_column("suborder", sa.Column("released_at", sa.DateTime(timezone=True)))
    op.add_column("suborder", sa.Column("release_reason", _S(length=1000), nullable=True))
    suborder = sa.table(
        "suborder",
        sa.column("status", sa.String),
        sa.column("return_handled_at", sa.DateTime(timezone=True)),
        sa.column("return_resolution", sa.String),
        sa.column("dispatched_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        suborder.update()
        .where(suborder.c.status == "returned")
        .values(return_handled_at=suborder.c.dispatched_at, return_resolution="redispatched")
    )
    op.add_column(
        "ticket", sa.Column("conduct", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("ticket", sa.Column("conduct_accused", _S(length=200), nullable=True))
    op.add_column("ticket", sa.Column("duplicate_of_id", sa.Integer(), nullable=True))
    op.add_column(
        "ticket", sa.Column("simulated", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_index("ix_ticket_duplicate_of_id", "ticket", ["duplicate_of_id"], unique=False)
    op.create_index("ix_ticket_phone_created", "ticket", ["submitter_phone", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_phone_created", table_name="ticket")
    op.drop_index("ix_ticket_duplicate_of_id", table_name="ticket")
    for col in ("simulated", "duplicate_of_id", "conduct_accused", "conduct"):
        op.drop_column("ticket", col)
    for col in (
        "release_reason",
        "released_at",
        "return_note",
        "return_resolution",
        "return_handled_at",
        "role",
    ):
        op.drop_column("suborder", col)
