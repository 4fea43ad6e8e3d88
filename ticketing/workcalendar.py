"""The working-day calendar: ONE list of exceptions for the SLA clock and for business hours.

Working days follow the State Council's arrangement as packaged by chinese-calendar (weekends and
statutory holidays off, 调休 make-up days on). That package knows only the years published when it
was released; for a later year the administrator enters the announced holidays and make-up
workdays on the calendar page (stored in admin_setting "calendar"), and until then Monday-Friday
is assumed (and the admin home page and the start-up log say so).

The exceptions are the union of, in increasing precedence:
  sla.yaml extra_holidays / extra_workdays and business_hours.yaml closed_dates / open_dates
  (the seed files), then the dates stored by the administrator.
`calendar_exceptions(settings)` returns them; `is_workday(day, exceptions)` is the one rule that
both ticketing.sla (deadlines) and ticketing.hours (the IVR's opening hours) call.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import chinese_calendar
from sqlmodel import Session

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing.admin_settings import (
    CALENDAR,
    read_setting,
    setting_version,
    stored_setting,
    write_setting,
)
from ticketing.errors import InvalidInput

log = logging.getLogger(__name__)

HORIZON_DAYS = 60  # the admin is warned when any of the next 60 days has no calendar data
_warned_years: set[int] = set()


@dataclass(frozen=True)
class Exceptions:
    """Dates whose status differs from chinese-calendar (or from Mon-Fri past its data)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    declared_years: frozenset[int] = frozenset()  # years the administrator entered


def _dates(values: Any, where: str) -> frozenset[date]:
    try:
        return frozenset(
            v if isinstance(v, date) else date.fromisoformat(str(v)) for v in values or []
        )
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e


def _stored_years(value: Any) -> tuple[frozenset[date], frozenset[date], frozenset[int]]:
    hol: set[date] = set()
    work: set[date] = set()
    years: set[int] = set()
    for year, entry in ((value or {}).get("years") or {}).items():
        years.add(int(year))
        hol |= _dates([e["day"] for e in entry.get("holidays") or []], "calendar")
        work |= _dates([e["day"] for e in entry.get("workdays") or []], "calendar")
    return frozenset(hol), frozenset(work), frozenset(years)


# per process: (url, calendar version) -> (the seed dicts it was built from, the exceptions)
_memo: dict[tuple[str, int], tuple[dict, dict, Exceptions]] = {}


def calendar_exceptions(settings: Settings) -> Exceptions:
    """THE list of exceptions (seed files + the administrator's entries), rebuilt only when the
    stored calendar's version or a seed file changes (deadlines ask on every intake)."""
    sla = load_yaml(settings, "sla.yaml")
    hours = load_yaml(settings, "business_hours.yaml")
    key = (settings.resolved_database_url, setting_version(settings, CALENDAR))
    hit = _memo.get(key)
    if hit is not None and hit[0] is sla and hit[1] is hours:
        return hit[2]
    seed_h = _dates(sla.get("extra_holidays"), "sla.yaml: extra_holidays") | _dates(
        hours.get("closed_dates"), "business_hours.yaml: closed_dates"
    )
    seed_w = _dates(sla.get("extra_workdays"), "sla.yaml: extra_workdays") | _dates(
        hours.get("open_dates"), "business_hours.yaml: open_dates"
    )
    db_h, db_w, years = _stored_years(read_setting(settings, CALENDAR))
    holidays = (seed_h - db_w) | db_h
    exc = Exceptions(holidays, ((seed_w - db_h) | db_w) - holidays, years)
    if len(_memo) > 32:
        _memo.clear()
    _memo[key] = (sla, hours, exc)
    return exc


def package_knows(day: date) -> bool:
    """Whether chinese-calendar has the State Council's arrangement for this day."""
    try:
        chinese_calendar.is_workday(day)
    except NotImplementedError:
        return False
    return True


def is_workday(day: date, exceptions: Exceptions) -> bool:
    """The one working-day rule: the exceptions, else chinese-calendar, else Monday-Friday."""
    if day in exceptions.holidays:
        return False
    if day in exceptions.workdays:
        return True
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        if day.year not in exceptions.declared_years and day.year not in _warned_years:
            _warned_years.add(day.year)
            log.warning(
                "no holiday calendar for %s (chinese-calendar has no data and none was entered "
                "on the admin calendar page); counting Monday-Friday",
                day.year,
            )
        return day.weekday() < 5


def is_working_day(settings: Settings, day: date) -> bool:
    return is_workday(day, calendar_exceptions(settings))


# ---------------------------------------------------------------- coverage
def package_years() -> list[int]:
    """The years chinese-calendar has data for."""
    from chinese_calendar.constants import holidays

    return sorted({d.year for d in holidays})


def covered_years(settings: Settings) -> list[int]:
    """Years with a known arrangement: the package's and those the administrator entered."""
    return sorted(set(package_years()) | set(calendar_exceptions(settings).declared_years))


def uncovered_days(settings: Settings, today: date, days: int = HORIZON_DAYS) -> list[date]:
    """Days among the next `days` whose year has no known arrangement."""
    years = set(covered_years(settings))
    out = []
    for i in range(days + 1):
        d = today + timedelta(days=i)
        if d.year not in years and not package_knows(d):
            out.append(d)
    return out


def coverage_warning(settings: Settings, today: date) -> str | None:
    """The admin's warning (Chinese) when the next HORIZON_DAYS days are not all covered."""
    gap = uncovered_days(settings, today)
    if not gap:
        return None
    years = sorted({d.year for d in gap})
    names = "、".join(f"{y}年" for y in years)
    return (
        f"未来{HORIZON_DAYS}天内有日期缺少节假日安排（{names}，自{gap[0].isoformat()}起）："
        "办理时限和工作时间暂按周一至周五计算。请在“节假日日历”中录入国务院公布的放假和调休安排。"
    )


def log_coverage(settings: Settings, today: date) -> None:
    """Start-up check (English log, like every log line)."""
    gap = uncovered_days(settings, today)
    if gap:
        log.warning(
            "holiday calendar: %d of the next %d days have no holiday data (from %s, years %s); "
            "enter the State Council arrangement on /admin/calendar",
            len(gap),
            HORIZON_DAYS,
            gap[0].isoformat(),
            sorted({d.year for d in gap}),
        )


# ---------------------------------------------------------------- the administrator's entries
_RANGE = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2})\s*(?:(?:~|～|至|到|--)\s*(\d{4}-\d{1,2}-\d{1,2}))?\s*(.*)$"
)


def _iso(text: str) -> date:
    y, m, d = (int(x) for x in text.split("-"))
    return date(y, m, d)


def parse_days(text: str, year: int, what: str) -> list[dict[str, str]]:
    """Lines "2027-02-06~2027-02-13 春节" or "2027-02-14 春节调休" → [{day, note}], sorted.

    Every date must fall in `year`; a bad line is an InvalidInput naming it (nothing saved)."""
    out: dict[date, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _RANGE.match(line)
        try:
            if m is None:
                raise ValueError
            first = _iso(m.group(1))
            last = _iso(m.group(2)) if m.group(2) else first
        except ValueError:
            raise InvalidInput(
                f"{what}第{n}行无法识别：“{line}”（格式：2027-01-01 元旦，或 2027-02-06~2027-02-13 春节）",
                field=what,
            ) from None
        if last < first or (last - first).days > 40:
            raise InvalidInput(f"{what}第{n}行的日期范围不正确：“{line}”", field=what)
        if first.year != year or last.year != year:
            raise InvalidInput(f"{what}第{n}行的日期不在{year}年内：“{line}”", field=what)
        note = m.group(3).strip()[:40]
        d = first
        while d <= last:
            out[d] = note
            d += timedelta(days=1)
    return [{"day": d.isoformat(), "note": out[d]} for d in sorted(out)]


def stored_calendar(session: Session) -> dict[str, Any]:
    value = stored_setting(session, CALENDAR) or {}
    return {"years": dict(value.get("years") or {})}


def save_year(
    session: Session,
    year: int,
    holidays: list[dict[str, str]],
    workdays: list[dict[str, str]],
    by: str | None = None,
) -> None:
    """Store one year's arrangement (replacing what was entered for that year)."""
    if not 2000 <= year <= 2100:
        raise InvalidInput("年份必须在2000至2100之间", field="year")
    both = {e["day"] for e in holidays} & {e["day"] for e in workdays}
    if both:
        raise InvalidInput(
            f"同一天不能既是放假日又是调休上班日：{'、'.join(sorted(both))}", field="workdays"
        )
    if not holidays:
        raise InvalidInput(f"请至少录入{year}年的一个放假日期", field="holidays")
    cal = stored_calendar(session)
    cal["years"][str(year)] = {"holidays": holidays, "workdays": workdays}
    write_setting(session, CALENDAR, cal, by)


def delete_year(session: Session, year: int, by: str | None = None) -> None:
    cal = stored_calendar(session)
    if cal["years"].pop(str(year), None) is None:
        raise InvalidInput(f"没有录入过{year}年的安排", field="year")
    write_setting(session, CALENDAR, cal, by)
