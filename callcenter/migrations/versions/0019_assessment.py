"""assessment (issue #12): appeals (申诉/免责) against a ticket's place in a month's indicator;
ticketevent (action, at), the index the monthly figures read warnings and returns by

Revision ID: 0019_assessment
Revises: 0018_kb_pages
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0019_assessment"
down_revision: str | Sequence[str] | None = "0018_kb_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the assessment reads one kind of event over a period (warnings raised, returns)
    with op.batch_alter_table("ticketevent", schema=None) as batch_op:
        batch_op.create_index("ix_ticketevent_action_at", ["action", "at"], unique=False)
    s = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "assessment_appeal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", s(length=7), nullable=False),
        sa.Column("department_code", s(length=32), nullable=False),
        sa.Column("indicator", s(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("reason", s(length=1000), nullable=False),
        sa.Column("status", s(length=12), nullable=False),
        sa.Column("filed_by", s(length=64), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", s(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", s(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["department_code"], ["department.code"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assessment_appeal", schema=None) as batch_op:
        batch_op.create_index("ix_appeal_month_status", ["month", "status"], unique=False)
        batch_op.create_index(
            "uq_appeal_once",
            ["month", "department_code", "indicator", "ticket_id"],
            unique=True,
        )
        batch_op.create_index(
            batch_op.f("ix_assessment_appeal_ticket_id"), ["ticket_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("assessment_appeal")
    with op.batch_alter_table("ticketevent", schema=None) as batch_op:
        batch_op.drop_index("ix_ticketevent_action_at")
