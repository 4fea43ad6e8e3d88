"""hotspots (issue #12, plan §19): per-ticket keywords for the high-frequency matter analysis

ticket_keyword (ticket, word, the ticket's created_at and channel) and hotspot_indexed (tickets whose text was
read) and hotspot_month (each month's figures, a cache), filled by the scheduler's `hotspots` job and by the ASR job when a transcript attaches
(ticketing.hotspots).

Revision ID: 0021_hotspots
Revises: 0020_policy_push
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_hotspots"
down_revision: str | Sequence[str] | None = "0020_policy_push"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_keyword",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("word", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("ticket_id", "word"),
    )
    op.create_index(
        "ix_ticket_keyword_created",
        "ticket_keyword",
        ["created_at", "word", "channel", "ticket_id"],
    )
    op.create_index("ix_ticket_keyword_word", "ticket_keyword", ["word", "created_at"])
    op.create_table(
        "hotspot_indexed",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("ticket_id"),
    )

    op.create_table(
        "hotspot_month",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("month", "channel", "category"),
    )


def downgrade() -> None:
    op.drop_table("hotspot_month")
    op.drop_table("hotspot_indexed")
    op.drop_index("ix_ticket_keyword_word", table_name="ticket_keyword")
    op.drop_index("ix_ticket_keyword_created", table_name="ticket_keyword")
    op.drop_table("ticket_keyword")
