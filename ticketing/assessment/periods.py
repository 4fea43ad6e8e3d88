"""Assessment periods: a month, a half-year (体检) or a year, bounded in the local zone.

A period is [start, end) in naive UTC, with both bounds at local midnight (sla.yaml timezone,
Asia/Shanghai): an event at 2027-01-31 23:30 +08:00 (15:30 UTC) belongs to January. `end` is
also the "as of" instant: a period's figures read only what had happened before it, so a past
month computed again after later events gives the same figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy.orm import Session

from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.sla import local_zone, to_utc_naive

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_HALF = re.compile(r"^(\d{4})-H([12])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class Period:
    key: str  # "2027-01" | "2027-H1" | "2027"
    kind: str  # month | half | year
    label: str  # 2027年1月 | 2027年上半年 | 2027年
    first: date  # local first day
    after: date  # local first day after the period
    start: datetime  # naive UTC
    end: datetime  # naive UTC (exclusive; the "as of" instant)

    @property
    def months(self) -> list[str]:
        """The month keys the period covers (appeals are filed per month)."""
        out, y, m = [], self.first.year, self.first.month
        while date(y, m, 1) < self.after:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def _bound(settings: Settings, d: date) -> datetime:
    return to_utc_naive(datetime(d.year, d.month, d.day, tzinfo=local_zone(settings)))


def _make(settings: Settings, key: str, kind: str, label: str, first: date, after: date) -> Period:
    return Period(key, kind, label, first, after, _bound(settings, first), _bound(settings, after))


def month_period(settings: Settings, year: int, month: int) -> Period:
    after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return _make(
        settings,
        f"{year:04d}-{month:02d}",
        "month",
        f"{year}年{month}月",
        date(year, month, 1),
        after,
    )


def parse_period(settings: Settings, key: str) -> Period:
    """ "2027-01" (a month), "2027-H1"/"2027-H2" (a half-year 体检) or "2027" (the year)."""
    key = (key or "").strip()
    if m := _MONTH.match(key):
        y, mo = int(m.group(1)), int(m.group(2))
        if 2000 <= y <= 2200 and 1 <= mo <= 12:
            return month_period(settings, y, mo)
    elif m := _HALF.match(key):
        y, h = int(m.group(1)), int(m.group(2))
        if 2000 <= y <= 2200:
            first = date(y, 1 if h == 1 else 7, 1)
            after = date(y, 7, 1) if h == 1 else date(y + 1, 1, 1)
            label = f"{y}年{'上' if h == 1 else '下'}半年"
            return _make(settings, key, "half", label, first, after)
    elif m := _YEAR.match(key):
        y = int(m.group(1))
        if 2000 <= y <= 2200:
            return _make(settings, key, "year", f"{y}年", date(y, 1, 1), date(y + 1, 1, 1))
    raise InvalidInput("考核期格式应为 2027-01（月）、2027-H1（半年）或 2027（年）", field="period")


def as_of(period: Period, now: datetime) -> Period:
    """The period as it stands at `now` (naive UTC): a running period is counted up to now, not
    to its end, so a step whose time runs out later in the period is not yet counted as missed.
    A period that has ended (or not begun) is unchanged: its figures are as of its end."""
    if period.start <= now < period.end:
        return replace(period, end=now)
    return period


def current_month_key(settings: Settings, now: datetime) -> str:
    """The month (local) that contains `now` (naive UTC)."""
    from ticketing.sla import to_local

    d = to_local(settings, now).date()
    return f"{d.year:04d}-{d.month:02d}"


def previous_month_key(settings: Settings, now: datetime) -> str:
    """The last complete month: the default the pages open on."""
    from ticketing.sla import to_local

    d = to_local(settings, now).date()
    y, m = (d.year - 1, 12) if d.month == 1 else (d.year, d.month - 1)
    return f"{y:04d}-{m:02d}"


def published_month(session: Session, settings: Settings, key: str | None, now: datetime) -> Period:
    """The month the public summary (办事质效晾晒) shows for `key`: a complete month from the
    month of the first ticket on; anything else (not a month, not yet complete, before any
    ticket) shows the last complete month. Why bounded below: an anonymous visitor must not make
    the server compute, and the cache keep, figures for any month back to year 1."""
    from sqlalchemy import func, select

    from ticketing.models import Ticket

    latest = parse_period(settings, previous_month_key(settings, now))
    try:
        period = parse_period(settings, key or latest.key)
    except InvalidInput:
        return latest
    if period.kind != "month" or period.key > latest.key:
        return latest
    first = session.execute(select(func.min(Ticket.created_at))).scalar()
    if first is None:
        return latest
    return period if period.key >= current_month_key(settings, first) else latest
