"""assessment cache (issue #12): each closed month's computed figures per department

assessment_month_cache (month, generation, computed_at, data): filled by the first view of a
closed month, the RQ job `ticketing.jobs.run_assessment_month` (after an accepted appeal or an
admin's 重新计算) and the scheduler's hourly warm-up (ticketing.assessment.cache).

ix_ticket_uncounted: a partial index of the tickets the assessment leaves out (重复件, simulated),
so its NOT IN reads the few from an index instead of scanning every ticket per query.

Revision ID: 0024_assessment_cache
Revises: 0023_loose_ends
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_assessment_cache"
down_revision: str | Sequence[str] | None = "0023_loose_ends"
branch_labels: str | Sequence[str] | None = None
UNCOUNTED = "duplicate_of_id IS NOT NULL OR simulated"
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assessment_month_cache",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("month"),
    )
    op.create_index(
        "ix_ticket_uncounted",
        "ticket",
        ["id"],
        postgresql_where=sa.text(UNCOUNTED),
        sqlite_where=sa.text(UNCOUNTED),
    )


def downgrade() -> None:
    op.drop_index("ix_ticket_uncounted", table_name="ticket")
    op.drop_table("assessment_month_cache")
