"""Ticket numbers (一事一单): "DXE-20261125-000123", issued once, gap-free per local day.

One atomic statement does the work on both SQLite and PostgreSQL:
    INSERT … ON CONFLICT(day) DO UPDATE SET value = value + 1 RETURNING value
PostgreSQL row-locks the counter row until the intake transaction ends; SQLite's writers are
serialised by BEGIN IMMEDIATE (config.database). Because the bump lives in the caller's transaction,
a rolled-back intake also rolls back its number, so committed numbers have no gaps.

Since every intake of the day queues on that one row, intake takes its number as late as it can:
the ticket and its sub-orders are inserted under a unique placeholder, then the number is bumped,
written into the ticket and the events are inserted, and the transaction commits
(ticketing.intake._insert_auto_dispatched). Gap policy unchanged: no gaps among committed numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import Session

from config.settings import Settings

_BUMP = text(
    "INSERT INTO ticketcounter (day, value) VALUES (:day, 1) "
    "ON CONFLICT (day) DO UPDATE SET value = ticketcounter.value + 1 "
    "RETURNING value"
)


def local_day(settings: Settings, now: datetime | None = None) -> str:
    """YYYYMMDD in the service's time zone; naive datetimes are UTC (the storage convention)."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(ZoneInfo(settings.timezone)).strftime("%Y%m%d")


def next_number(session: Session, settings: Settings, now: datetime | None = None) -> str:
    day = local_day(settings, now)
    value = session.execute(_BUMP, {"day": day}).scalar_one()
    return format_number(settings.ticket_prefix, day, int(value))


def format_number(prefix: str, day: str, value: int) -> str:
    return f"{prefix}-{day}-{value:06d}"
