"""Ticket idempotency keys: a double click or a retried request files one ticket (and one SMS).

The client's `Idempotency-Key` header, scoped by who filed the ticket ("<actor>:<key>"), is kept
with the ticket under a unique index: a repeat finds the first ticket instead of filing another,
and two racing inserts cannot both succeed.

Revision ID: 0009_idempotency
Revises: 0008_fts_automerge
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009_idempotency"
down_revision: str | Sequence[str] | None = "0008_fts_automerge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not batch mode: on SQLite a batch would rebuild the ticket table and lose the
# full-text search triggers on it (0002).
def upgrade() -> None:
    op.add_column(
        "ticket",
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    )
    op.create_index("uq_ticket_idempotency_key", "ticket", ["idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_ticket_idempotency_key", table_name="ticket")
    op.drop_column("ticket", "idempotency_key")
