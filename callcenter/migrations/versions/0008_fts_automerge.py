"""SQLite ticket search: FTS5 merges its index segments 16 at a time (automerge 16, was 4).

Why: every intake transaction adds a segment to ticket_fts, and FTS5 merges segments level by
level as they accumulate, inside the INSERT that tips a level over. With SQLite's default of 4
a ticket's postings are rewritten once per level of a base-4 tree; at 16, half as many levels,
so about half the merge work. Measured with bench/ticketing.py (same machine, same run
conditions): server CPU per HTTP creation 1.75 -> 1.49 ms fresh and 1.81 -> 1.59 ms at 200k
tickets, closed-loop p99 64 -> 50 ms fresh and 112 -> 53 ms at 200k; search p95 at 200k 13.0
-> 13.9 ms (more segments per query, well inside its 20 ms). PostgreSQL: nothing to do.

Revision ID: 0008_fts_automerge
Revises: 0007_recording_source
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_fts_automerge"
down_revision: str | Sequence[str] | None = "0007_recording_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOMERGE = 16
SQLITE_DEFAULT = 4


def _set(value: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # a persistent FTS5 option, kept in ticket_fts's own config table
        op.execute(f"INSERT INTO ticket_fts(ticket_fts, rank) VALUES ('automerge', {value})")


def upgrade() -> None:
    _set(AUTOMERGE)


def downgrade() -> None:
    _set(SQLITE_DEFAULT)
