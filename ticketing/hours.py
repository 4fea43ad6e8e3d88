"""Business hours with the Chinese public-holiday calendar (holidays closed, 调休 workdays open).

The IVR asks `is_open(now)` once per call; after hours it promises a callback at
`next_opening(now)`. Working days come from the one calendar of ticketing.workcalendar (the
State Council arrangement via chinese-calendar, plus the exceptions the administrator enters),
the same the SLA clock counts, so a Saturday declared a make-up workday is open and a weekday
inside the Golden Week is closed.

The opening periods and the after-hours message are edited on the admin page (admin_setting
"business_hours", over business_hours.yaml as the seed) and take effect without a restart:
`load_business_hours` is cheap to call per call (cached per stored version).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from config.loader import ConfigError, load_yaml
from config.settings import Settings, get_settings
from ticketing.admin_settings import BUSINESS_HOURS, read_setting
from ticketing.workcalendar import Exceptions, calendar_exceptions, is_workday

log = logging.getLogger(__name__)

WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
_SEARCH_DAYS = 60  # longest closure we look past (Spring Festival is ~9 days)


def _hhmm(value: Any, where: str) -> time:
    try:
        hh, mm = str(value).split(":")
        return time(int(hh), int(mm))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"business_hours.yaml: {where}: expected HH:MM, got {value!r}") from e


def _dates(values: Any, where: str) -> frozenset[date]:
    try:
        return frozenset(
            v if isinstance(v, date) else date.fromisoformat(str(v)) for v in values or []
        )
    except ValueError as e:
        raise ConfigError(f"business_hours.yaml: {where}: {e}") from e


@dataclass(frozen=True)
class BusinessHours:
    """Opening periods on working days, in one timezone."""

    tz: ZoneInfo
    periods: tuple[tuple[time, time], ...]
    closed_dates: frozenset[date] = field(default_factory=frozenset)
    open_dates: frozenset[date] = field(default_factory=frozenset)
    # the after-hours voicemail prompt ({callback}: the next opening); None: ivr.yaml's "closed"
    after_hours_message: str | None = None
    # the one calendar (workcalendar.calendar_exceptions); None: closed/open_dates alone
    calendar: Exceptions | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BusinessHours:
        periods = []
        for i, p in enumerate(data.get("periods") or []):
            if not isinstance(p, list | tuple) or len(p) != 2:
                raise ConfigError(f"business_hours.yaml: periods[{i}]: expected [start, end]")
            start, end = _hhmm(p[0], f"periods[{i}]"), _hhmm(p[1], f"periods[{i}]")
            if end <= start:
                raise ConfigError(f"business_hours.yaml: periods[{i}]: end must be after start")
            periods.append((start, end))
        if not periods:
            raise ConfigError("business_hours.yaml: at least one opening period is required")
        try:
            tz = ZoneInfo(str(data.get("timezone", "Asia/Shanghai")))
        except Exception as e:
            raise ConfigError(f"business_hours.yaml: timezone: {e}") from e
        message = str(data.get("after_hours_message") or "").strip() or None
        return cls(
            tz=tz,
            periods=tuple(sorted(periods)),
            closed_dates=_dates(data.get("closed_dates"), "closed_dates"),
            open_dates=_dates(data.get("open_dates"), "open_dates"),
            after_hours_message=message,
        )

    def local(self, now: datetime) -> datetime:
        """Naive datetimes are UTC (the project's storage convention)."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(self.tz)

    def is_workday(self, day: date) -> bool:
        cal = self.calendar
        if cal is None:
            cal = Exceptions(self.closed_dates, self.open_dates - self.closed_dates)
        return is_workday(day, cal)

    def is_open(self, now: datetime) -> bool:
        t = self.local(now)
        if not self.is_workday(t.date()):
            return False
        clock = t.time().replace(tzinfo=None)
        return any(start <= clock < end for start, end in self.periods)

    def next_opening(self, now: datetime) -> datetime:
        """The start of the next opening period (now itself when open), tz-aware local time."""
        t = self.local(now)
        if self.is_open(t):
            return t
        for offset in range(_SEARCH_DAYS + 1):
            day = t.date() + timedelta(days=offset)
            if not self.is_workday(day):
                continue
            for start, _end in self.periods:
                candidate = datetime.combine(day, start, tzinfo=self.tz)
                if candidate > t:
                    return candidate
        raise ConfigError(f"business_hours.yaml: no opening within {_SEARCH_DAYS} days of {t}")


def format_opening(when: datetime) -> str:
    """Chinese wording for a callback promise: 11月26日（星期四）08:30."""
    return f"{when.month}月{when.day}日（{WEEKDAYS_ZH[when.weekday()]}）{when:%H:%M}"


def business_hours_data(settings: Settings) -> dict[str, Any]:
    """business_hours.yaml overlaid with what the administrator stored (periods, message)."""
    data = dict(load_yaml(settings, "business_hours.yaml"))
    stored = read_setting(settings, BUSINESS_HOURS) or {}
    for key in ("periods", "after_hours_message"):
        if key in stored:
            data[key] = stored[key]
    return data


# per process: url -> (the seed dict, the calendar, the stored edit, the parsed hours). Keyed on
# the stored value itself, not its version: a version number can come back (a test database
# emptied and written again) where the value differs.
_memo: dict[str, tuple[dict, Exceptions, Any, BusinessHours]] = {}


def load_business_hours(settings: Settings | None = None) -> BusinessHours:
    """The current hours (stored edits over the YAML) with the one working-day calendar."""
    settings = settings or get_settings()
    seed = load_yaml(settings, "business_hours.yaml")
    cal = calendar_exceptions(settings)
    stored = read_setting(settings, BUSINESS_HOURS)
    key = settings.resolved_database_url
    hit = _memo.get(key)
    if hit is not None and hit[0] is seed and hit[1] is cal and hit[2] == stored:
        return hit[3]
    hours = replace(BusinessHours.from_dict(business_hours_data(settings)), calendar=cal)
    if len(_memo) > 32:
        _memo.clear()
    _memo[key] = (seed, cal, stored, hours)
    return hours


def is_open(now: datetime, settings: Settings | None = None) -> bool:
    return load_business_hours(settings).is_open(now)


def next_opening(now: datetime, settings: Settings | None = None) -> datetime:
    return load_business_hours(settings).next_opening(now)


is_working_time = is_open  # the name the ticketing contract uses
