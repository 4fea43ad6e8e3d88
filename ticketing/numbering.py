"""Ticket numbers (一事一单): "DXE-20261125-000123", issued once, gap-free per local day.

One atomic statement does the work on both SQLite and PostgreSQL:
    INSERT … ON CONFLICT(day) DO UPDATE SET value = value + 1 RETURNING value
PostgreSQL row-locks the counter row until the intake transaction ends; SQLite's writers are
serialised by BEGIN IMMEDIATE (config.database). Because the bump lives in the caller's transaction,
a rolled-back intake also rolls back its number, so committed numbers have no gaps.

Since every intake of the day queues on that one row, intake writes its tickets in batches
(ticketing.intake_write): one bump of `n` numbers for the whole batch, so the row is locked once
per batch rather than once per ticket. Gap policy unchanged: no gaps among committed numbers.
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


_BUMP_BY = text(
    "INSERT INTO ticketcounter (day, value) VALUES (:day, :n) "
    "ON CONFLICT (day) DO UPDATE SET value = ticketcounter.value + :n "
    "RETURNING value"
)


def next_number(session: Session, settings: Settings, now: datetime | None = None) -> str:
    day = local_day(settings, now)
    value = session.execute(_BUMP, {"day": day}).scalar_one()
    return format_number(settings.ticket_prefix, day, int(value))


def next_numbers(session: Session, settings: Settings, now: datetime, n: int) -> list[str]:
    """`n` consecutive numbers of `now`'s day with one bump of the counter (a batch of intakes)."""
    if n < 1:
        return []
    day = local_day(settings, now)
    last = int(session.execute(_BUMP_BY, {"day": day, "n": n}).scalar_one())
    return [format_number(settings.ticket_prefix, day, v) for v in range(last - n + 1, last + 1)]


def format_number(prefix: str, day: str, value: int) -> str:
    return f"{prefix}-{day}-{value:06d}"
