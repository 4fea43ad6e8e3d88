"""Committed deadlines (§9) and warning levels (§13), from config/defaults/sla.yaml.

Working-day rule (documented for the notice and the assessments): the acceptance day itself is not
counted ("开始的当日不计入，自下一日开始计算", Civil Code art. 201). Counting starts the next calendar
day and takes only working days per the State Council holiday arrangement (public holidays off,
make-up workdays 调休 on), via chinese-calendar. The deadline is `end_of_day` local time on the
N-th counted working day. So a matter accepted on a holiday, at a weekend or after end of day gets
exactly the same N full working days as one accepted in office hours, and never fewer.
Hour-based policies (critical matters) run on the clock, 7x24, from the acceptance instant.

chinese-calendar only knows the years the State Council has published; for later dates the
fallback is Mon-Fri, corrected by the one list of exceptions of ticketing.workcalendar (the dates
the administrator enters on the calendar page, plus the seed lists `extra_holidays` /
`extra_workdays` of sla.yaml), shared with business hours.

All datetimes in and out are naive UTC (the storage convention); aware datetimes are accepted.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from config.loader import load_yaml
from config.settings import Settings
from ticketing import workcalendar
from ticketing.errors import InvalidInput
from ticketing.workcalendar import Exceptions, calendar_exceptions

log = logging.getLogger(__name__)

UNITS = ("hours", "working_days")
LEVELS = ("red", "yellow", "blue")  # most severe first


def _cfg(settings: Settings) -> dict[str, Any]:
    return load_yaml(settings, "sla.yaml")


def _tz(settings: Settings) -> ZoneInfo:
    return ZoneInfo(_cfg(settings).get("timezone") or settings.timezone)


def local_zone(settings: Settings) -> ZoneInfo:
    """The zone deadlines and working days are counted in (sla.yaml timezone)."""
    return _tz(settings)


def to_utc_naive(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt
    return dt.astimezone(UTC).replace(tzinfo=None)


def to_local(settings: Settings, dt: datetime) -> datetime:
    """Aware local time for display (naive input is UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(_tz(settings))


def _end_of_day(settings: Settings) -> time:
    raw = str(_cfg(settings).get("end_of_day", "18:00"))
    hh, mm = raw.split(":")
    return time(int(hh), int(mm))


def is_working_day(settings: Settings, d: date) -> bool:
    """Whether `d` is a working day (the one calendar: ticketing.workcalendar)."""
    return workcalendar.is_working_day(settings, d)


def add_duration(settings: Settings, start: datetime, amount: int | float, unit: str) -> datetime:
    """start + amount hours (clock) or working days (see the module rule); naive UTC out."""
    if unit not in UNITS:
        raise InvalidInput(f"不支持的时限单位：{unit}", field="unit", allowed=list(UNITS))
    if not isinstance(amount, int | float) or amount <= 0:
        raise InvalidInput("时限必须为正数", field="amount")
    start_utc = to_utc_naive(start)
    if unit == "hours":
        return start_utc + timedelta(hours=amount)
    if int(amount) != amount or amount > 366:
        raise InvalidInput("工作日数必须为1-366之间的整数", field="amount")
    day = _after_working_days(
        to_local(settings, start_utc).date(), int(amount), calendar_exceptions(settings)
    )
    local_deadline = datetime.combine(day, _end_of_day(settings), tzinfo=_tz(settings))
    return to_utc_naive(local_deadline)


@lru_cache(maxsize=2048)
def _after_working_days(start: date, amount: int, exceptions: Exceptions) -> date:
    """The `amount`-th working day after `start`. Cached: every intake of a day asks the same
    question, and the calendar (package data + the exceptions, part of the key) is fixed."""
    day, counted = start, 0
    while counted < amount:
        day += timedelta(days=1)
        if workcalendar.is_workday(day, exceptions):
            counted += 1
    return day


def policy_for(settings: Settings, category: str, urgency: str) -> tuple[int | float, str]:
    policy = _cfg(settings).get("policy") or {}
    try:
        rule = policy[str(category)][str(urgency)]
    except KeyError:
        raise InvalidInput(
            f"没有类别“{category}”、紧急程度“{urgency}”的办理时限规定",
            field="category",
        ) from None
    return rule["amount"], rule["unit"]


def deadline_for(
    settings: Settings, category: str, urgency: str, start: datetime
) -> tuple[datetime, str]:
    """(deadline naive UTC, basis such as "5 working_days") for a matter accepted at `start`."""
    amount, unit = policy_for(settings, category, urgency)
    return add_duration(settings, start, amount, unit), f"{amount} {unit}"


def warning_for(
    settings: Settings,
    urgency: str,
    start: datetime,
    deadline: datetime | None,
    now: datetime,
) -> str:
    """ "none"/"blue"/"yellow"/"red" by the share of committed (wall-clock) time used.

    Past the deadline is `overdue` (red) whatever the urgency; otherwise the most severe level whose
    urgency list includes this matter and whose used_fraction has been reached.
    """
    if deadline is None:
        return "none"
    cfg = _cfg(settings).get("warnings") or {}
    start, deadline, now = to_utc_naive(start), to_utc_naive(deadline), to_utc_naive(now)
    if now > deadline:
        return str(cfg.get("overdue", "red"))
    total = (deadline - start).total_seconds()
    if total <= 0:
        return str(cfg.get("overdue", "red"))
    used = max((now - start).total_seconds(), 0.0) / total
    for level in LEVELS:
        spec = cfg.get(level)
        if not spec:
            continue
        if str(urgency) in [str(u) for u in spec.get("urgencies", [])] and used >= float(
            spec["used_fraction"]
        ):
            return level
    return "none"
