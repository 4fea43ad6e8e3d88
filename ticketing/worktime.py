"""Working hours for the "stalled" rules of §13: time counted only on working days.

A general matter "stalls" when no step happened for N working hours. Hours count on working
days only (whole local days, Chinese public holidays off, 调休 Saturdays on), so a matter left on
Friday evening is not "stalled" by Monday morning. The calendar is the one deadlines use
(`ticketing.sla.is_working_day`); a `WorkCalendar` remembers its answers for one scan round.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from config.settings import Settings
from ticketing.sla import local_zone, to_utc_naive
from ticketing.workcalendar import Exceptions, calendar_exceptions, is_workday

_SHARED: dict[tuple[str, str], tuple[Exceptions, WorkCalendar]] = {}


class WorkCalendar:
    """Working-day answers for one settings, remembered (a scan asks about the same few days)."""

    def __init__(self, settings: Settings, exceptions: Exceptions | None = None) -> None:
        self.settings = settings
        self.tz: ZoneInfo = local_zone(settings)
        self.exceptions = exceptions if exceptions is not None else calendar_exceptions(settings)
        self._days: dict[date, bool] = {}
        self._after: dict[tuple[datetime, float], datetime] = {}

    @classmethod
    def shared(cls, settings: Settings) -> WorkCalendar:
        """The process's calendar for these settings, its answers kept while the calendar's
        exceptions (seed files, the administrator's dates) stay the same object: one check per
        call, so a state change costs no calendar lookups for days already seen."""
        exc = calendar_exceptions(settings)
        key = (settings.resolved_database_url, str(settings.config_dir))
        hit = _SHARED.get(key)
        if hit is not None and hit[0] is exc and len(hit[1]._after) < 100_000:
            return hit[1]
        if len(_SHARED) > 16:
            _SHARED.clear()
        cal = cls(settings, exc)
        _SHARED[key] = (exc, cal)
        return cal

    def working(self, d: date) -> bool:
        known = self._days.get(d)
        if known is None:
            known = self._days[d] = is_workday(d, self.exceptions)
        return known

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The instant (naive UTC) when `hours` working hours have passed since `start`."""
        key = (start, hours)
        hit = self._after.get(key)
        if hit is not None:
            return hit
        t = to_utc_naive(start).replace(tzinfo=UTC).astimezone(self.tz)
        left = timedelta(hours=hours)
        for _ in range(800):  # a bound: a stall rule of years is a config error, not a hang
            midnight = datetime.combine(t.date() + timedelta(days=1), time(), tzinfo=self.tz)
            if self.working(t.date()):
                span = midnight - t
                if left <= span:
                    out = to_utc_naive(t + left)
                    self._after[key] = out
                    return out
                left -= span
            t = midnight
        raise ValueError(f"no {hours} working hours within 800 days of {start}")

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Working hours from start to end (0 when end is not later)."""
        s = to_utc_naive(start).replace(tzinfo=UTC).astimezone(self.tz)
        e = to_utc_naive(end).replace(tzinfo=UTC).astimezone(self.tz)
        total = 0.0
        while s < e:
            midnight = datetime.combine(s.date() + timedelta(days=1), time(), tzinfo=self.tz)
            if self.working(s.date()):
                total += (min(midnight, e) - s).total_seconds()
            s = midnight
        return total / 3600.0
