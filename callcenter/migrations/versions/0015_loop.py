"""issue #18, the closed loop's loose ends

- suborder: `role` (lead 主办 | assist 协办 | NULL), a return's handling (`return_handled_at`,
  `return_resolution` redispatched | closed, `return_note`) and an assisting department's release
  (`released_at`, `release_reason`; status "released").
- ticket: `conduct` + `conduct_accused` (作风投诉, never sent to the accused), `duplicate_of_id`
  (重复件, indexed) and `simulated` (demo tickets, 模拟); ix_ticket_phone_created for the
  duplicate lookup by phone.

Returns recorded before this revision count as handled (they were looked at under the old rule).

Revision ID: 0015_loop
Revises: 0013_knowledge
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015_loop"
down_revision: str | Sequence[str] | None = "0013_knowledge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("suborder", schema=None) as b:
        b.add_column(sa.Column("role", _S(length=8), nullable=True))
        b.add_column(sa.Column("return_handled_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("return_resolution", _S(length=16), nullable=True))
        b.add_column(sa.Column("return_note", _S(length=1000), nullable=True))
        b.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("release_reason", _S(length=1000), nullable=True))
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
    with op.batch_alter_table("ticket", schema=None) as b:
        b.add_column(sa.Column("conduct", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("conduct_accused", _S(length=200), nullable=True))
        b.add_column(sa.Column("duplicate_of_id", sa.Integer(), nullable=True))
        b.add_column(
            sa.Column("simulated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        b.create_foreign_key("fk_ticket_duplicate_of", "ticket", ["duplicate_of_id"], ["id"])
        b.create_index(b.f("ix_ticket_duplicate_of_id"), ["duplicate_of_id"], unique=False)
        b.create_index("ix_ticket_phone_created", ["submitter_phone", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as b:
        b.drop_index("ix_ticket_phone_created")
        b.drop_index(b.f("ix_ticket_duplicate_of_id"))
        b.drop_constraint("fk_ticket_duplicate_of", type_="foreignkey")
        b.drop_column("simulated")
        b.drop_column("duplicate_of_id")
        b.drop_column("conduct_accused")
        b.drop_column("conduct")
    with op.batch_alter_table("suborder", schema=None) as b:
        b.drop_column("release_reason")
        b.drop_column("released_at")
        b.drop_column("return_note")
        b.drop_column("return_resolution")
        b.drop_column("return_handled_at")
        b.drop_column("role")
