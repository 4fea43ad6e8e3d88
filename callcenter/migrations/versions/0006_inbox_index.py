"""Merge the package branches; index the department inbox by deadline.

Revision ID: 0006_inbox_index
Revises: 0002_search, 0003_calls, 0005_recordings
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_inbox_index"
down_revision: str | Sequence[str] | None = ("0002_search", "0003_calls", "0005_recordings")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_suborder_dept_deadline", "suborder", ["department_code", "deadline_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_suborder_dept_deadline", table_name="suborder")
