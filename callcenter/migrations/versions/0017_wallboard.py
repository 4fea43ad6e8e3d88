"""wallboard: agent state-change log and supervisor control audit (callcenter)

Revision ID: 0017_wallboard
Revises: 0016_admin
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0017_wallboard"
down_revision: str | Sequence[str] | None = "0016_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "agentstatechange",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server", s(length=32), nullable=False),
        sa.Column("interface", s(length=100), nullable=False),
        sa.Column("agent_name", s(length=100), nullable=True),
        sa.Column("state", s(length=16), nullable=False),
        sa.Column("reason", s(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agentstatechange", schema=None) as batch_op:
        batch_op.create_index("ix_agentstate_at", ["at"], unique=False)
        batch_op.create_index("ix_agentstate_agent_at", ["server", "interface", "at"], unique=False)
    op.create_table(
        "controlaudit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", s(length=64), nullable=False),
        sa.Column("server", s(length=32), nullable=False),
        sa.Column("command", s(length=32), nullable=False),
        sa.Column("target", s(length=100), nullable=False),
        sa.Column("args", sa.JSON(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("result", s(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("controlaudit", schema=None) as batch_op:
        batch_op.create_index("ix_controlaudit_at", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("controlaudit")
    op.drop_table("agentstatechange")
