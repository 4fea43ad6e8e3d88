"""高频事项分析 (plan §19): the most frequent categories, departments and keywords of a month, their
volumes, handling time and satisfaction month by month, and the topics rising this month, so the
city can pick the matters whose process to re-engineer.

Definitions (one place):
- Period: calendar months in settings.timezone (Asia/Shanghai): a ticket belongs to the month its
  created_at falls in, there.
- Counted tickets: a 重复件 (duplicate_of_id set) is left out, so a chain counts once (its first
  ticket); tickets filed by `callcenter demo` (simulated) are left out. Filters: channel, category.
- Volume: counted tickets (a department: counted tickets with a sub-order of that department; a
  keyword: counted tickets that have it among their keywords, ticketing.hotspots.index).
- Handling time (办理时长): resolved_at − created_at in hours, averaged over the resolved tickets.
- Satisfaction (满意率): ratings 满意 + 基本满意 ÷ ratings, over every round's rating that is in force
  (a staff-recorded rating superseded by the submitter's own is left out).
- Rise score: (this month + 1) ÷ (baseline + 1), the baseline being the average of the previous
  `baseline_months` months (months without tickets count 0); RISING when this month's volume ≥
  `min_volume` and the score ≥ `min_score` (hotspots.yaml `rising`). The +1 keeps small counts
  from looking like huge rises. While the month is still running, the baseline is scaled to the
  share of the month gone by (`elapsed`: half-way through, half the average), so the month so
  far is compared with what the previous months had by the same point.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, distinct, literal
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from config.loader import load_yaml
from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.hotspots.index import unindexed_count
from ticketing.hotspots.models import TicketKeyword
from ticketing.models import Evaluation, Rating, SubOrder, Ticket, utcnow

MONTH_PATTERN = r"^((?:19|20)\d{2})-(0[1-9]|1[0-2])$"  # 1900-01 … 2099-12
MONTH_RE = re.compile(MONTH_PATTERN)
MAX_MONTHS = 24
MAX_TOP = 50
SATISFIED = (Rating.satisfied.value, Rating.basic.value)


@dataclass(frozen=True)
class HotspotQuery:
    """What to analyse: `month` "YYYY-MM" (local; None = this month), a trend of `months` months
    ending with it, optional channel/category filters, `top` items per list."""

    month: str | None = None
    months: int = 6
    channel: str | None = None
    category: str | None = None
    top: int = 10


@dataclass(frozen=True)
class RisingRule:
    baseline_months: int
    min_volume: int
    min_score: float


@dataclass
class MonthFigures:
    month: str
    count: int = 0
    avg_hours: float | None = None
    satisfaction: float | None = None
    rated: int = 0


@dataclass
class Topic:
    """One category, department or keyword: this month's figures, the rise and the trend."""

    key: str
    count: int
    baseline: float
    score: float
    rising: bool
    avg_hours: float | None
    satisfaction: float | None
    trend: list[MonthFigures]
    # up (rising), down (score ≤ 1 ÷ min_score from a baseline ≥ min_volume), flat
    direction: str = "flat"


@dataclass
class HotspotReport:
    month: str
    months: list[str]  # the trend window, oldest first; the last is `month`
    channel: str | None
    category: str | None
    total: int
    totals: list[MonthFigures]
    categories: list[Topic]
    departments: list[Topic]
    keywords: list[Topic]
    rising: list[Topic]  # rising keywords, highest score first
    heat: dict[str, dict[str, int]]  # department → category → this month's volume
    rule: RisingRule
    elapsed: float = 1.0  # share of the month gone by (< 1 while it runs; baselines scaled)
    unindexed: int = 0  # tickets whose keywords are not stored yet
    generated_at: datetime = field(default_factory=utcnow)


def rising_rule(settings: Settings) -> RisingRule:
    cfg = load_yaml(settings, "hotspots.yaml").get("rising") or {}
    return RisingRule(
        int(cfg.get("baseline_months", 3)),
        int(cfg.get("min_volume", 5)),
        float(cfg.get("min_score", 1.5)),
    )


def rise_score(count: int, previous: Sequence[int], elapsed: float = 1.0) -> tuple[float, float]:
    """(baseline, score): the previous months' average (× `elapsed`, the share of this month gone
    by) and (count + 1) ÷ (baseline + 1)."""
    baseline = (sum(previous) / len(previous) if previous else 0.0) * elapsed
    return round(baseline, 3), round((count + 1) / (baseline + 1), 3)


# ---------------------------------------------------------------- periods
def this_month(settings: Settings, now: datetime | None = None) -> str:
    from ticketing.sla import to_local

    local = to_local(settings, now or utcnow())
    return f"{local.year:04d}-{local.month:02d}"


def parse_month(month: str) -> tuple[int, int]:
    m = MONTH_RE.match(month or "")
    if not m:
        raise InvalidInput("月份格式应为 YYYY-MM，如 2026-11", field="month")
    return int(m.group(1)), int(m.group(2))


def shift_month(month: str, delta: int) -> str:
    y, m = parse_month(month)
    n = y * 12 + (m - 1) + delta
    return f"{n // 12:04d}-{n % 12 + 1:02d}"


def month_start(settings: Settings, month: str) -> datetime:
    """The month's first instant in settings.timezone, as naive UTC."""
    from ticketing.sla import to_utc_naive

    y, m = parse_month(month)
    return to_utc_naive(datetime(y, m, 1, tzinfo=ZoneInfo(settings.timezone)))


def month_bounds(settings: Settings, month: str) -> tuple[datetime, datetime]:
    return month_start(settings, month), month_start(settings, shift_month(month, 1))


# ---------------------------------------------------------------- SQL pieces
def _hours(session: Session) -> ColumnElement[Any]:
    """resolved_at − created_at in hours (NULL while unresolved)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", col(Ticket.resolved_at) - col(Ticket.created_at)) / 3600.0
    return (func.julianday(col(Ticket.resolved_at)) - func.julianday(col(Ticket.created_at))) * 24.0


def _bucket(column: Any, bounds: Sequence[datetime]) -> ColumnElement[Any]:
    """0 … n−1: the month of `column` among the n months that `bounds` (n + 1 instants) delimit."""
    whens = [(column < b, literal(i)) for i, b in enumerate(bounds[1:-1])]
    if not whens:
        return literal(0)
    return case(*whens, else_=literal(len(bounds) - 2))


def counted(q: HotspotQuery, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    """The tickets the analysis counts in [since, until): no 重复件, no demo, the filters."""
    where: list[ColumnElement[bool]] = [
        col(Ticket.created_at) >= since,
        col(Ticket.created_at) < until,
        # written so that no planner reads ix_ticket_duplicate_of_id for "IS NULL" (nearly every
        # row) instead of the period's created_at index
        func.coalesce(col(Ticket.duplicate_of_id), 0) == 0,
        col(Ticket.simulated).is_(False),
    ]
    if q.channel:
        where.append(col(Ticket.channel) == q.channel)
    if q.category:
        where.append(col(Ticket.category) == q.category)
    return where


def _figures(
    session: Session,
    q: HotspotQuery,
    bounds: Sequence[datetime],
    key: Any,
    *,
    join: Any = None,
    extra: Sequence[ColumnElement[bool]] = (),
    bucket_col: Any = None,
) -> dict[Any, dict[int, list[float]]]:
    """key → month index → [count, hours sum, resolved, rated, satisfied]."""
    bucket = _bucket(bucket_col if bucket_col is not None else col(Ticket.created_at), bounds)
    where = [*counted(q, bounds[0], bounds[-1]), *extra]
    hours = _hours(session)
    base = sa_select(
        key,
        bucket,
        func.count(distinct(col(Ticket.id))),
        func.sum(hours),
        func.count(col(Ticket.resolved_at)),
    ).select_from(Ticket)
    rated = select(
        key,
        bucket,
        func.count(col(Evaluation.id)),
        func.sum(case((col(Evaluation.overall).in_(SATISFIED), 1), else_=0)),
    ).select_from(Ticket)
    if join is not None:
        base = base.join(*join)
        rated = rated.join(*join)
    rated = rated.join(Evaluation, col(Evaluation.ticket_id) == col(Ticket.id))
    out: dict[Any, dict[int, list[float]]] = {}
    conn = session.connection()
    for k, b, n, h, r in conn.execute(base.where(*where).group_by(key, bucket)):
        out.setdefault(k, {})[int(b)] = [int(n), float(h or 0), int(r), 0, 0]
    for k, b, n, s in session.exec(
        rated.where(*where, col(Evaluation.superseded).is_(False)).group_by(key, bucket)
    ):
        cell = out.setdefault(k, {}).setdefault(int(b), [0, 0.0, 0, 0, 0])
        cell[3], cell[4] = int(n), int(s or 0)
    return out


def _month_figures(month: str, cell: list[float] | None) -> MonthFigures:
    if not cell:
        return MonthFigures(month)
    n, hours, resolved, rated, satisfied = cell
    return MonthFigures(
        month,
        int(n),
        round(hours / resolved, 1) if resolved else None,
        round(satisfied / rated, 4) if rated else None,
        int(rated),
    )


def _topics(
    per_key: dict[Any, dict[int, list[float]]],
    months: list[str],
    rule: RisingRule,
    elapsed: float = 1.0,
) -> list[Topic]:
    last = len(months) - 1
    out: list[Topic] = []
    for key, cells in per_key.items():
        trend = [_month_figures(m, cells.get(i)) for i, m in enumerate(months)]
        now = trend[last]
        prev = [t.count for t in trend[max(last - rule.baseline_months, 0) : last]]
        prev += [0] * (rule.baseline_months - len(prev))
        baseline, score = rise_score(now.count, prev, elapsed)
        rising = now.count >= rule.min_volume and score >= rule.min_score
        topic = Topic(
            str(key), now.count, baseline, score, rising, now.avg_hours, now.satisfaction, trend
        )
        if rising:
            topic.direction = "up"
        elif baseline >= rule.min_volume and score <= 1 / rule.min_score:
            topic.direction = "down"
        out.append(topic)
    out.sort(key=lambda t: (-t.count, -t.score, t.key))
    return out


# ---------------------------------------------------------------- the report
def hotspot_report(
    session: Session, settings: Settings, q: HotspotQuery, *, now: datetime | None = None
) -> HotspotReport:
    """The analysis of `q.month` (see the module's definitions); `now` for a running month."""
    rule = rising_rule(settings)
    month = q.month or this_month(settings)
    parse_month(month)
    top = max(1, min(q.top, MAX_TOP))
    n_months = max(1, min(q.months, MAX_MONTHS), rule.baseline_months + 1)
    months = [shift_month(month, i - n_months + 1) for i in range(n_months)]
    bounds = [month_start(settings, m) for m in [*months, shift_month(month, 1)]]
    cur0, cur1 = bounds[-2], bounds[-1]
    now = now or utcnow()
    elapsed = 1.0 if not cur0 <= now < cur1 else max((now - cur0) / (cur1 - cur0), 0.01)

    totals_raw = _figures(session, q, bounds, literal("all"))
    totals = [_month_figures(m, totals_raw.get("all", {}).get(i)) for i, m in enumerate(months)]

    categories = _topics(_figures(session, q, bounds, col(Ticket.category)), months, rule, elapsed)

    pairs = (
        select(SubOrder.ticket_id, SubOrder.department_code)
        .distinct()
        .where(col(SubOrder.dispatched_at) >= bounds[0])
        .subquery()
    )
    dept_key = pairs.c.department_code
    departments = _topics(
        _figures(session, q, bounds, dept_key, join=(pairs, pairs.c.ticket_id == Ticket.id)),
        months,
        rule,
        elapsed,
    )

    keywords, rising = _keyword_topics(session, q, bounds, months, rule, top, elapsed)

    heat: dict[str, dict[str, int]] = {}
    for dept, cat, n in session.exec(
        select(dept_key, col(Ticket.category), func.count(distinct(col(Ticket.id))))
        .select_from(Ticket)
        .join(pairs, pairs.c.ticket_id == Ticket.id)
        .where(*counted(q, cur0, cur1))
        .group_by(dept_key, col(Ticket.category))
    ):
        heat.setdefault(str(dept), {})[str(cat)] = int(n)

    return HotspotReport(
        month=month,
        months=months,
        channel=q.channel,
        category=q.category,
        total=totals[-1].count,
        totals=totals,
        categories=categories[:top],
        departments=departments[:top],
        keywords=keywords,
        rising=rising,
        heat=heat,
        rule=rule,
        elapsed=round(elapsed, 4),
        unindexed=unindexed_count(session),
    )


def _keyword_topics(
    session: Session,
    q: HotspotQuery,
    bounds: list[datetime],
    months: list[str],
    rule: RisingRule,
    top: int,
    elapsed: float,
) -> tuple[list[Topic], list[Topic]]:
    """The top keywords of the month and the rising ones. Two steps: volumes of the month and its
    baseline months for every word (a grouped count over ticket_keyword's covering period index:
    the tickets themselves are read only for a category filter), then the whole trend with
    handling time and satisfaction for the words shown."""
    last = len(months) - 1
    first = max(last - rule.baseline_months, 0)
    window = bounds[first:]
    kw_created = col(TicketKeyword.created_at)
    bucket = _bucket(kw_created, window)
    stmt = select(col(TicketKeyword.word), bucket, func.count()).where(
        kw_created >= window[0], kw_created < window[-1]
    )
    if q.channel:
        stmt = stmt.where(col(TicketKeyword.channel) == q.channel)
    if q.category:
        stmt = stmt.join(Ticket, col(Ticket.id) == col(TicketKeyword.ticket_id)).where(
            col(Ticket.category) == q.category
        )
    volumes: dict[str, list[int]] = {}
    span = len(window) - 1
    for word, b, n in session.exec(stmt.group_by(col(TicketKeyword.word), bucket)):
        volumes.setdefault(str(word), [0] * span)[int(b)] = int(n)
    scored: list[tuple[str, int, float]] = []  # (word, this month, score)
    for word, counts in volumes.items():
        current = counts[-1]
        if current:
            prev = counts[:-1] + [0] * (rule.baseline_months - (span - 1))
            scored.append((word, current, rise_score(current, prev, elapsed)[1]))
    shown = [w for w, _, _ in heapq.nsmallest(top, scored, key=lambda x: (-x[1], -x[2], x[0]))]
    rising_keys = [
        w
        for w, _, _ in heapq.nsmallest(
            top,
            (x for x in scored if x[1] >= rule.min_volume and x[2] >= rule.min_score),
            key=lambda x: (-x[2], -x[1], x[0]),
        )
    ]
    wanted = list(dict.fromkeys([*shown, *rising_keys]))
    if not wanted:
        return [], []
    full = _topics(
        _figures(
            session,
            q,
            bounds,
            col(TicketKeyword.word),
            join=(TicketKeyword, col(TicketKeyword.ticket_id) == col(Ticket.id)),
            extra=[
                col(TicketKeyword.word).in_(wanted),
                kw_created >= bounds[0],
                kw_created < bounds[-1],
            ],
            bucket_col=kw_created,
        ),
        months,
        rule,
        elapsed,
    )
    by_key = {t.key: t for t in full}
    return [by_key[k] for k in shown if k in by_key], [
        by_key[k] for k in rising_keys if k in by_key
    ]


# ---------------------------------------------------------------- drill-down
def hotspot_tickets(
    session: Session,
    settings: Settings,
    q: HotspotQuery,
    *,
    keyword: str | None = None,
    department: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[int, list[Ticket]]:
    """The counted tickets of `q.month` behind one figure (a keyword, a department, the filters),
    newest first: (how many in all, this page)."""
    month = q.month or this_month(settings)
    since, until = month_bounds(settings, month)
    where = counted(q, since, until)
    if keyword:
        where.append(
            col(Ticket.id).in_(
                select(TicketKeyword.ticket_id).where(
                    TicketKeyword.word == keyword,
                    col(TicketKeyword.created_at) >= since,
                    col(TicketKeyword.created_at) < until,
                )
            )
        )
    if department:
        where.append(
            col(Ticket.id).in_(
                select(SubOrder.ticket_id).where(SubOrder.department_code == department)
            )
        )
    total = session.exec(select(func.count()).select_from(Ticket).where(*where)).one()
    rows = session.exec(
        select(Ticket)
        .where(*where)
        .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return int(total), list(rows)
