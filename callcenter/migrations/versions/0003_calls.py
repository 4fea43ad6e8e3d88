"""call records (callcenter)

Revision ID: 0003_calls
Revises: 0001_ticketing
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003_calls"
down_revision: str | Sequence[str] | None = "0001_ticketing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "callrecord",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", s(length=64), nullable=False),
        sa.Column("server", s(length=32), nullable=False),
        sa.Column("caller_phone", s(length=40), nullable=True),
        sa.Column("caller_name", s(length=100), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ivr_path", s(length=200), nullable=True),
        sa.Column("ivr_choices", sa.JSON(), nullable=True),
        sa.Column("category", s(length=16), nullable=True),
        sa.Column("queue", s(length=64), nullable=True),
        sa.Column("wait_seconds", sa.Integer(), nullable=True),
        sa.Column("agent", s(length=100), nullable=True),
        sa.Column("agent_name", s(length=100), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=False),
        sa.Column("hold_seconds", sa.Integer(), nullable=False),
        sa.Column("disposition", s(length=16), nullable=False),
        sa.Column("recording_path", s(length=500), nullable=True),
        sa.Column("hangup_cause", s(length=8), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("ticket_number", s(length=32), nullable=True),
        sa.Column("ticket_error", s(length=500), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("callrecord", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callrecord_call_id"), ["call_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_callrecord_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index("ix_callrecord_started", ["started_at"], unique=False)
        batch_op.create_index(
            "ix_callrecord_disposition_started", ["disposition", "started_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("callrecord", schema=None) as batch_op:
        batch_op.drop_index("ix_callrecord_disposition_started")
        batch_op.drop_index("ix_callrecord_started")
        batch_op.drop_index(batch_op.f("ix_callrecord_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_callrecord_call_id"))
    op.drop_table("callrecord")
