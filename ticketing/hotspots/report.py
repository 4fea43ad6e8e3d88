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
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, delete, distinct, literal
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from config.loader import load_yaml
from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.hotspots.index import insert_ignore, unindexed_count
from ticketing.hotspots.models import HotspotMonth, TicketKeyword
from ticketing.models import SATISFIED_RATINGS, Evaluation, SubOrder, Ticket, utcnow

MONTH_PATTERN = r"^((?:19|20)\d{2})-(0[1-9]|1[0-2])$"  # 1900-01 … 2099-12
MONTH_RE = re.compile(MONTH_PATTERN)
MAX_MONTHS = 24
MAX_TOP = 50
SATISFIED = SATISFIED_RATINGS


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
    # months computed for this report (not fresh in hotspot_month): month → data, to keep
    computed: dict[str, dict[str, Any]] = field(default_factory=dict)


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


# ---------------------------------------------------------------- one month's figures
EMPTY: list[float] = [0, 0.0, 0, 0, 0]
CURRENT_TTL = timedelta(minutes=2)  # a running month's cached figures are this fresh at most
CLOSED_TTL = timedelta(hours=24)  # a closed month's (late replies and ratings still come in)


def _dept_pairs(since: datetime) -> Any:
    return (
        select(SubOrder.ticket_id, SubOrder.department_code)
        .distinct()
        .where(col(SubOrder.dispatched_at) >= since)
        .subquery()
    )


def compute_month(
    session: Session,
    settings: Settings,
    month: str,
    channel: str | None = None,
    category: str | None = None,
) -> dict[str, Any]:
    """One month's figures under the filters, as stored in hotspot_month.data: the month's cell
    [count, hours sum, resolved, rated, satisfied] in all, by category, by department and by
    keyword, and department → category → count."""
    since, until = month_bounds(settings, month)
    q = HotspotQuery(month=month, channel=channel, category=category)
    b = [since, until]

    def flat(d: dict[Any, dict[int, list[float]]]) -> dict[str, list[float]]:
        return {str(k): cells.get(0, EMPTY) for k, cells in d.items()}

    pairs = _dept_pairs(since)
    kw_created = col(TicketKeyword.created_at)
    heat: dict[str, dict[str, int]] = {}
    for dept, cat, n in session.exec(
        select(pairs.c.department_code, col(Ticket.category), func.count(distinct(col(Ticket.id))))
        .select_from(Ticket)
        .join(pairs, pairs.c.ticket_id == Ticket.id)
        .where(*counted(q, since, until))
        .group_by(pairs.c.department_code, col(Ticket.category))
    ):
        heat.setdefault(str(dept), {})[str(cat)] = int(n)
    return {
        "total": _figures(session, q, b, literal("all")).get("all", {}).get(0, EMPTY),
        "categories": flat(_figures(session, q, b, col(Ticket.category))),
        "departments": flat(
            _figures(
                session, q, b, pairs.c.department_code, join=(pairs, pairs.c.ticket_id == Ticket.id)
            )
        ),
        "keywords": flat(
            _figures(
                session,
                q,
                b,
                col(TicketKeyword.word),
                join=(TicketKeyword, col(TicketKeyword.ticket_id) == col(Ticket.id)),
                extra=[kw_created >= since, kw_created < until],
                bucket_col=kw_created,
            )
        ),
        "heat": heat,
    }


def _fresh(settings: Settings, month: str, computed_at: datetime, now: datetime) -> bool:
    end = month_bounds(settings, month)[1]
    if end > now:  # the month is running
        return now - computed_at <= CURRENT_TTL
    return computed_at >= end and now - computed_at <= CLOSED_TTL


def cached_months(
    session: Session,
    settings: Settings,
    months: Sequence[str],
    channel: str | None,
    category: str | None,
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """The fresh cached figures among `months` (month → data)."""
    rows = session.exec(
        select(HotspotMonth).where(
            col(HotspotMonth.month).in_(list(months)),
            HotspotMonth.channel == (channel or ""),
            HotspotMonth.category == (category or ""),
        )
    ).all()
    return {r.month: r.data for r in rows if _fresh(settings, r.month, r.computed_at, now)}


def save_months(session: Session, report: HotspotReport) -> int:
    """Keep the months `report` had to compute (hotspot_month), for the next views."""
    return _store(session, report.computed, report.channel, report.category, report.generated_at)


def _store(
    session: Session,
    computed: dict[str, dict[str, Any]],
    channel: str | None,
    category: str | None,
    at: datetime,
) -> int:
    if not computed:
        return 0
    ch, cat = channel or "", category or ""
    session.connection().execute(
        delete(HotspotMonth).where(
            col(HotspotMonth.month).in_(list(computed)),
            col(HotspotMonth.channel) == ch,
            col(HotspotMonth.category) == cat,
        )
    )
    insert_ignore(
        session,
        HotspotMonth.__table__,  # type: ignore[attr-defined]
        [
            {"month": m, "channel": ch, "category": cat, "computed_at": at, "data": d}
            for m, d in computed.items()
        ],
    )
    return len(computed)


def refresh_cache(
    session_factory: Any, settings: Settings, *, months: int = 12, now: datetime | None = None
) -> int:
    """The scheduler's part: the unfiltered figures of this month and the `months` − 1 before,
    each recomputed when stale, one transaction each. Returns how many were recomputed."""
    now = now or utcnow()
    current = this_month(settings, now)
    wanted = [shift_month(current, -i) for i in range(months)]
    done = 0
    for m in wanted:
        with session_factory() as s:
            if m in cached_months(s, settings, [m], None, None, now):
                continue
            _store(s, {m: compute_month(s, settings, m)}, None, None, now)
            done += 1
    return done


# ---------------------------------------------------------------- the report
def hotspot_report(
    session: Session, settings: Settings, q: HotspotQuery, *, now: datetime | None = None
) -> HotspotReport:
    """The analysis of `q.month` (see the module's definitions); `now` for a running month.

    Each month's figures come from hotspot_month when fresh (a running month: 2 minutes; a
    closed one: computed after it closed, within a day), else they are computed now and listed
    in `report.computed` for the caller to keep (save_months, in a write transaction)."""
    rule = rising_rule(settings)
    month = q.month or this_month(settings)
    parse_month(month)
    top = max(1, min(q.top, MAX_TOP))
    n_months = max(1, min(q.months, MAX_MONTHS), rule.baseline_months + 1)
    months = [shift_month(month, i - n_months + 1) for i in range(n_months)]
    cur0, cur1 = month_bounds(settings, month)
    now = now or utcnow()
    elapsed = 1.0 if not cur0 <= now < cur1 else max((now - cur0) / (cur1 - cur0), 0.01)

    have = cached_months(session, settings, months, q.channel, q.category, now)
    computed: dict[str, dict[str, Any]] = {}
    for m in months:
        if m not in have and month_bounds(settings, m)[0] <= now:
            computed[m] = compute_month(session, settings, m, q.channel, q.category)
    datas = [have.get(m) or computed.get(m) or {} for m in months]

    def per_key(part: str, keys: Sequence[str] | None = None) -> dict[str, dict[int, list[float]]]:
        out: dict[str, dict[int, list[float]]] = {}
        for i, d in enumerate(datas):
            cells = d.get(part) or {}
            for k in keys if keys is not None else cells:
                if k in cells:
                    out.setdefault(k, {})[i] = cells[k]
        return out

    totals = [_month_figures(m, d.get("total")) for m, d in zip(months, datas, strict=True)]
    categories = _topics(per_key("categories"), months, rule, elapsed)
    departments = _topics(per_key("departments"), months, rule, elapsed)

    # keywords: rank the month's words, score them against the baseline months, then build the
    # trend of the words shown
    last = len(months) - 1
    first = max(last - rule.baseline_months, 0)
    current_words = datas[-1].get("keywords") or {}
    scored: list[tuple[str, int, float]] = []  # (word, this month, score)
    for word, cell in current_words.items():
        n = int(cell[0])
        if n:
            prev = [
                int((datas[i].get("keywords") or {}).get(word, EMPTY)[0])
                for i in range(first, last)
            ]
            prev += [0] * (rule.baseline_months - len(prev))
            scored.append((word, n, rise_score(n, prev, elapsed)[1]))
    shown = [w for w, _, _ in heapq.nsmallest(top, scored, key=lambda x: (-x[1], -x[2], x[0]))]
    rising_keys = [
        w
        for w, _, _ in heapq.nsmallest(
            top,
            (x for x in scored if x[1] >= rule.min_volume and x[2] >= rule.min_score),
            key=lambda x: (-x[2], -x[1], x[0]),
        )
    ]
    by_key = {
        t.key: t
        for t in _topics(
            per_key("keywords", list(dict.fromkeys([*shown, *rising_keys]))), months, rule, elapsed
        )
    }

    return HotspotReport(
        month=month,
        months=months,
        channel=q.channel,
        category=q.category,
        total=totals[-1].count,
        totals=totals,
        categories=categories[:top],
        departments=departments[:top],
        keywords=[by_key[k] for k in shown if k in by_key],
        rising=[by_key[k] for k in rising_keys if k in by_key],
        heat={str(d): dict(c) for d, c in (datas[-1].get("heat") or {}).items()},
        rule=rule,
        elapsed=round(elapsed, 4),
        unindexed=unindexed_count(session),
        computed=computed,
    )


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
