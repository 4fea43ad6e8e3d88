"""The month cache: a closed month's figures per department, computed once and then read, so a
page over a county's year of tickets reads a row instead of recounting a month.

A month is closed once its end (local midnight, sla.yaml timezone: Asia/Shanghai) is
CLOSE_GRACE behind: its figures are "as of" that end (ticketing.assessment.indicators), so later
events do not change them; the grace lets a transaction that stamped its events just before
midnight commit first. The running month, later months, half-years and years are always
computed live (a half-year's or year's "as of" is its own end, not its months').

What changes a closed month's figures: an accepted appeal (ticketing.assessment.appeals) and an
admin's 重新计算 (after a correction of stored data, or a change of lookback_days). Both
`invalidate` the month in their own transaction (its stored figures are no longer read) and,
once that commits, enqueue the RQ job `ticketing.jobs.run_assessment_month`, which computes and
stores it again, so the next view is warm. The scheduler's hourly `warm_up` computes every closed
month not cached (the months before an upgrade, a job Redis lost). A page that meets a closed
month not cached computes it and keeps it (`keep`, in a write transaction of its own).

Stored per month: the figures (department → indicator → [num, den, seconds]), the accepted
appeals applied, each department's slowest sub-orders (the portrait's list, read by id), and the indicator codes and lookback they were computed with (another set reads
as a miss). Department names and the score weights are read at each view: the score and the
ranking are rebuilt from the figures (cheap).

Races: every invalidation raises the row's generation; a computation reads the generation before
its figures and stores them only if the row still has it (`keep`), so figures read before an
appeal's decision committed never overwrite its invalidation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Table, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from config.after_commit import after_commit
from config.database import session_scope
from config.settings import Settings
from ticketing.assessment.indicators import INDICATORS
from ticketing.assessment.models import AssessmentMonthCache
from ticketing.assessment.periods import Period, current_month_key, month_period, parse_period
from ticketing.assessment.scoring import (
    Figure,
    MonthFigures,
    figures,
    score_config,
)
from ticketing.assessment.tracing import slowest_ids
from ticketing.errors import InvalidInput
from ticketing.hotspots.index import insert_ignore
from ticketing.models import SubOrder, utcnow

log = structlog.get_logger("ticketing.assessment.cache")

CLOSE_GRACE = timedelta(minutes=10)
WARM_MONTHS = 24  # the warm-up looks this many months back (the portrait's trend needs 12)
WARM_BUDGET_S = 600.0  # one warm-up run's time; what is left goes on at the next run
_T: Table = AssessmentMonthCache.__table__  # type: ignore[attr-defined]
_INFO = "ticketing.assessment.cache.invalidated"


def is_closed(period: Period, now: datetime) -> bool:
    """A month whose end (plus the grace) has passed: its figures no longer change by events."""
    return period.kind == "month" and now >= period.end + CLOSE_GRACE


def _signature(settings: Settings) -> dict[str, Any]:
    return {"indicators": sorted(INDICATORS), "lookback_days": score_config(settings).lookback_days}


def _dump(settings: Settings, mf: MonthFigures) -> dict[str, Any]:
    return {
        **_signature(settings),
        "appeals": mf.appeals,
        "slowest": mf.slowest or {},
        "figures": {
            dept: {code: [f.num, f.den, f.seconds] for code, f in figs.items()}
            for dept, figs in mf.figures.items()
        },
    }


def _load(settings: Settings, month: str, row: Any, generation: int) -> MonthFigures | None:
    data = row.data
    if not data or row.computed_at is None:
        return None
    if {k: data.get(k) for k in ("indicators", "lookback_days")} != _signature(settings):
        return None
    figs = {
        dept: {
            code: Figure(INDICATORS[code].kind, num=int(v[0]), den=int(v[1]), seconds=float(v[2]))
            for code, v in per.items()
        }
        for dept, per in (data.get("figures") or {}).items()
    }
    kept = data.get("slowest")  # None: stored without it (the portrait reads it live)
    slowest = None if kept is None else {str(k): [int(i) for i in v] for k, v in kept.items()}
    return MonthFigures(
        month, figs, int(data.get("appeals") or 0), row.computed_at, True, True, generation, slowest
    )


def _rows(session: Session, months: Iterable[str]) -> dict[str, Any]:
    return {
        r.month: r
        for r in session.execute(
            select(_T.c.month, _T.c.generation, _T.c.computed_at, _T.c.data).where(
                _T.c.month.in_(list(months))
            )
        )
    }


def cached_months(
    session: Session, settings: Settings, months: Iterable[str]
) -> dict[str, MonthFigures]:
    """The months among `months` whose figures are stored (one query)."""
    out = {}
    for m, r in _rows(session, months).items():
        got = _load(settings, m, r, r.generation)
        if got is not None:
            out[m] = got
    return out


def cached_month(session: Session, settings: Settings, period: Period) -> MonthFigures | None:
    return cached_months(session, settings, [period.key]).get(period.key)


def month_figures(session: Session, settings: Settings, period: Period) -> MonthFigures:
    """A closed month's figures: stored, or computed now (`cached` False) with the generation
    read first, for `keep`."""
    row = _rows(session, [period.key]).get(period.key)
    if row is not None and (got := _load(settings, period.key, row, row.generation)):
        return got
    return compute(session, settings, period, None if row is None else row.generation)


def compute(
    session: Session, settings: Settings, period: Period, generation: int | None
) -> MonthFigures:
    at = utcnow()
    figs, n = figures(session, settings, period)
    slowest = slowest_ids(session, settings, period)
    return MonthFigures(period.key, figs, n, at, False, True, generation, slowest)


def keep(session: Session, settings: Settings, computed: Iterable[MonthFigures | None]) -> int:
    """Store closed months computed by a view or a job, each only if no invalidation came
    after it read the row's generation (another computation of the same generation may have
    stored it already: same figures). Returns how many were stored."""
    stored = 0
    for mf in computed:
        if mf is None or mf.cached or not mf.closed:
            continue
        values = {"computed_at": mf.computed_at, "data": _dump(settings, mf)}
        if mf.generation is None:  # no row was there: a row made meanwhile wins
            before = _generation(session, mf.month)
            insert_ignore(session, _T, [{"month": mf.month, "generation": 0, **values}])
            stored += int(before is None and _generation(session, mf.month) == 0)
        else:
            r = session.execute(
                update(_T)
                .where(_T.c.month == mf.month, _T.c.generation == mf.generation)
                .values(**values)
            )
            stored += getattr(r, "rowcount", 0) or 0
    return stored


def _generation(session: Session, month: str) -> int | None:
    return session.execute(select(_T.c.generation).where(_T.c.month == month)).scalar()


def invalidate(session: Session, settings: Settings, month: str) -> None:
    """The month's stored figures are no longer read (in the caller's transaction); once that
    commits, the job that computes them again is enqueued."""
    insert_ignore(session, _T, [{"month": month, "generation": 0}])
    session.execute(
        update(_T)
        .where(_T.c.month == month)
        .values(generation=_T.c.generation + 1, computed_at=None, data=None)
    )
    after_commit(session, _INFO, [(settings, month)], _enqueue_all)


def request_recompute(session: Session, settings: Settings, month: str, now: datetime) -> Period:
    """An admin's 重新计算 of a closed month: invalidated now, computed again by the job."""
    period = parse_period(settings, month)
    if period.kind != "month":
        raise InvalidInput("重新计算按月进行：请填写 2027-01 这样的月份", field="month")
    if not is_closed(period, now):
        raise InvalidInput(f"{period.label}尚未结束，其数据实时计算，无需重新计算", field="month")
    invalidate(session, settings, period.key)
    return period


def _enqueue_all(items: list[tuple[Settings, str]]) -> None:
    months: dict[str, Settings] = {}
    for settings, month in items:  # one job per month, however many appeals were decided
        months.setdefault(month, settings)
    for month, settings in months.items():
        try:
            enqueue(settings, month)
        except Exception:  # committed already: the scheduler's warm-up computes it
            log.exception("assessment_month_enqueue_failed", month=month)


def enqueue(settings: Settings, month: str) -> None:
    from rq import Retry

    from config.queues import get_queue

    get_queue(settings, "default").enqueue_call(
        "ticketing.jobs.run_assessment_month",
        args=(month, settings.job_snapshot()),
        retry=Retry(max=3, interval=[30, 300, 1800]),
        timeout=1800,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"assessment month {month}",
    )


def recompute(
    engine: Engine, settings: Settings, month: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The job's work: compute a closed month and store it (a month not closed: nothing)."""
    period = parse_period(settings, month)
    if not is_closed(period, now or utcnow()):
        return {"month": month, "stored": 0, "closed": False}
    with session_scope(engine, read_only=True) as s:
        mf = compute(s, settings, period, _generation(s, month))
    with session_scope(engine) as s:
        stored = keep(s, settings, [mf])
    return {"month": month, "stored": stored, "departments": len(mf.figures)}


def closed_months(session: Session, now: datetime, settings: Settings) -> list[str]:
    """The closed months worth keeping: from the first sub-order's (at most WARM_MONTHS back)
    to the last closed one."""
    first = session.execute(select(func.min(SubOrder.dispatched_at))).scalar()
    if first is None:
        return []
    y, m = (int(x) for x in current_month_key(settings, now).split("-"))
    out = []
    for _ in range(WARM_MONTHS + 1):
        p = month_period(settings, y, m)
        if p.end <= first:
            break
        if is_closed(p, now):
            out.append(p.key)
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return sorted(out)


def warm_up(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    budget_s: float = WARM_BUDGET_S,
) -> list[str]:
    """The scheduler's hourly job: compute and store every closed month not cached, oldest
    first, each in its own transactions, until the budget is spent. Returns the months done."""
    now = now or utcnow()
    began = time.monotonic()
    with session_scope(engine, read_only=True) as s:
        months = closed_months(s, now, settings)
        missing = [m for m in months if m not in cached_months(s, settings, months)]
    done = []
    for m in missing:
        if time.monotonic() - began > budget_s:
            break
        if recompute(engine, settings, m, now=now)["stored"]:
            done.append(m)
    return done
