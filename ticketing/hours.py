"""Business hours with the Chinese public-holiday calendar (holidays closed, 调休 workdays open).

The IVR asks `is_open(now)` once per call; after hours it promises a callback at
`next_opening(now)`. Working days come from chinese-calendar so a Saturday declared a make-up
workday is open and a weekday inside the Golden Week is closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar

from config.loader import ConfigError, load_yaml
from config.settings import Settings, get_settings

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
        return cls(
            tz=tz,
            periods=tuple(sorted(periods)),
            closed_dates=_dates(data.get("closed_dates"), "closed_dates"),
            open_dates=_dates(data.get("open_dates"), "open_dates"),
        )

    def local(self, now: datetime) -> datetime:
        """Naive datetimes are UTC (the project's storage convention)."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(self.tz)

    def is_workday(self, day: date) -> bool:
        if day in self.closed_dates:
            return False
        if day in self.open_dates:
            return True
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:
            log.warning("chinese-calendar has no data for %s; assuming Mon-Fri", day.year)
            return day.weekday() < 5

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


def load_business_hours(settings: Settings | None = None) -> BusinessHours:
    return BusinessHours.from_dict(load_yaml(settings or get_settings(), "business_hours.yaml"))


def is_open(now: datetime, settings: Settings | None = None) -> bool:
    return load_business_hours(settings).is_open(now)


def next_opening(now: datetime, settings: Settings | None = None) -> datetime:
    return load_business_hours(settings).next_opening(now)


is_working_time = is_open  # the name the ticketing contract uses
