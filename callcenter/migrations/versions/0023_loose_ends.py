"""issue #18's loose ends: the hand-off secrets are stored encrypted (ticketing.sealed)

- department.handoff_secret widened from 200 to 512 characters on PostgreSQL: a Fernet token of a
  200-character secret with its "fernet:" prefix is about 360. SQLite does not enforce the length,
  and changing the declared type there would rebuild `department` (batch mode), which the
  sub-orders' foreign keys forbid: nothing to do there. The rows still in plain text are encrypted when
  the app starts (callcenter.run.prepare_database → ticketing.sealed.seal_stored_secrets: the key
  comes from the deployment's secret key, which a migration does not read) or on the next save.

Revision ID: 0023_loose_ends
Revises: 0022_sla_speed
"""

from collections.abc import Sequence

import sqlmodel
from alembic import op

revision: str = "0023_loose_ends"
down_revision: str | Sequence[str] | None = "0022_sla_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgresql():
        op.alter_column(
            "department",
            "handoff_secret",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
            type_=sqlmodel.sql.sqltypes.AutoString(length=512),
            existing_nullable=True,
        )


def downgrade() -> None:
    if _postgresql():  # a sealed secret does not fit 200 characters: it is dropped
        op.execute("UPDATE department SET handoff_secret = NULL WHERE length(handoff_secret) > 200")
        op.alter_column(
            "department",
            "handoff_secret",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=512),
            type_=sqlmodel.sql.sqltypes.AutoString(length=200),
            existing_nullable=True,
        )
