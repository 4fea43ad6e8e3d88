"""The department portrait (§18): one department's figures against the city for a period, its
month-by-month trend (its score and main rates beside the city's) and its slowest matters.

Each month of the trend is built from that month's figures: from the month cache when closed
(one query for all of them), computed now otherwise (a closed month not cached yet: kept by the
caller, as `to_keep`); a month not begun has no point. The slowest matters are read by the
sub-orders the month cache keeps for the department, else from that department's rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from config.settings import Settings
from ticketing.assessment import cache
from ticketing.assessment.periods import Period, parse_period
from ticketing.assessment.scoring import (
    Assessment,
    DepartmentResult,
    MonthFigures,
    city_average,
    departments,
    live,
    period_figures,
    ranked,
)
from ticketing.assessment.tracing import SLOWEST, SLOWEST_BY, TracedRow, indicator_rows
from ticketing.models import utcnow

TREND_MONTHS = 12
TREND_RATES = ("finish_on_time", "satisfaction")


@dataclass
class Portrait:
    result: Assessment  # the period's, every department (the rank, the city's figures)
    row: DepartmentResult | None  # None: no such department in the period
    trend: dict[str, Any] | None  # {"kind": "trend", "months": [...], "series": {...}}
    slowest: list[TracedRow]
    to_keep: list[MonthFigures] = field(default_factory=list)  # closed months computed now


def trend_months(settings: Settings, period: Period) -> list[str]:
    """The months the trend shows: the TREND_MONTHS up to a month period, a half-year's or
    year's own months."""
    last = parse_period(settings, period.months[-1])
    y, m = last.first.year, last.first.month
    keys: list[str] = []
    for _ in range(TREND_MONTHS if period.kind == "month" else len(period.months)):
        keys.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return keys[::-1]


def department_portrait(
    session: Session,
    settings: Settings,
    period: Period,
    code: str,
    *,
    now: datetime | None = None,
    trend: bool = True,
) -> Portrait:
    now = now or utcnow()
    depts = departments(session)
    main = period_figures(session, settings, period, now)
    result = ranked(settings, period, main, depts)
    months: dict[str, Assessment | None] = {}
    if trend:
        keys = trend_months(settings, period)
        periods = {k: parse_period(settings, k) for k in keys}
        stored = cache.cached_months(
            session, settings, [k for k, p in periods.items() if cache.is_closed(p, now)]
        )
        for k, p in periods.items():
            if k == period.key:
                months[k] = result
            elif k in stored:
                months[k] = ranked(settings, p, stored[k], depts)
            elif p.start >= now:  # not begun: no point
                months[k] = None
            elif cache.is_closed(p, now):
                months[k] = ranked(settings, p, cache.month_figures(session, settings, p), depts)
            else:
                months[k] = ranked(settings, p, live(session, settings, p, now), depts)
    # a cached month keeps each department's slowest sub-orders: only those rows are read
    ids = main.slowest.get(code, []) if main.cached and main.slowest is not None else None
    slowest = (
        []
        if ids == []
        else indicator_rows(
            session,
            settings,
            period,
            code,
            SLOWEST_BY,
            limit=SLOWEST,
            longest_first=True,
            suborder_ids=ids,
            now=now,
        )
    )
    keep = [r.to_keep for r in (result, *months.values()) if r is not None and r.to_keep]
    return Portrait(
        result=result,
        row=result.row(code),
        trend=_series(code, months) if trend else None,
        slowest=slowest,
        to_keep=list({m.month: m for m in keep}.values()),
    )


def _series(code: str, months: dict[str, Assessment | None]) -> dict[str, Any]:
    """The department's score and main rates (percent) by month, with the city's."""
    series: dict[str, list[float | None]] = {"score": [], "city_score": []}
    for c in TREND_RATES:
        series[c], series["city_" + c] = [], []
    for res in months.values():
        row = res.row(code) if res is not None else None
        avg = city_average(res) if res is not None else {}
        series["score"].append(row.score if row else None)
        scores = [r.score for r in res.rows if r.score is not None] if res is not None else []
        series["city_score"].append(round(sum(scores) / len(scores), 2) if scores else None)
        for c in TREND_RATES:
            v = row.figures[c].value if row else None
            series[c].append(None if v is None else round(v * 100, 1))
            cv = avg.get(c)
            series["city_" + c].append(None if cv is None else round(cv * 100, 1))
    return {"kind": "trend", "months": list(months), "series": series}
