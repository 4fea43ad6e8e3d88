"""administrator's pages (issue #18): departments kept in the database, settings the admin edits

- department: leaders (JSON list of names), handoff_secret (write-only in the UI), edited_at (set
  by an admin edit; departments.yaml then no longer overwrites the row)
- admin_setting: key → JSON value with a version each process compares with its cache (business
  hours, the holiday calendar, routing keywords, the departments' change stamp)

Revision ID: 0016_admin
Revises: 0015_loop
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016_admin"
down_revision: str | Sequence[str] | None = "0015_loop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("department") as b:
        b.add_column(sa.Column("leaders", sa.JSON(), nullable=False, server_default="[]"))
        b.add_column(
            sa.Column("handoff_secret", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        b.add_column(sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "admin_setting",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("admin_setting")
    with op.batch_alter_table("department") as b:
        b.drop_column("edited_at")
        b.drop_column("handoff_secret")
        b.drop_column("leaders")
