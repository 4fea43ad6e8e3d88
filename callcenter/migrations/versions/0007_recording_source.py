"""Index recordings by source path: the spool sweep asks which PBX files are stored already.

Revision ID: 0007_recording_source
Revises: 0006_inbox_index
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_recording_source"
down_revision: str | Sequence[str] | None = "0006_inbox_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_recording_source_path", "recording", ["source_path"])


def downgrade() -> None:
    op.drop_index("ix_recording_source_path", table_name="recording")
