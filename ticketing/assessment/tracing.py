"""Every point traceable: the tickets behind one indicator of one department, as the aggregate
counted them (the same definition, ticketing.assessment.indicators), each marked in or out of the
numerator, and whether an accepted appeal took it out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select
from sqlmodel import Session

from config.settings import Settings
from ticketing.assessment.indicators import INDICATORS, T, as_naive, base_for
from ticketing.assessment.periods import Period, as_of
from ticketing.assessment.scoring import accepted_appeals, appealed, score_config, tune
from ticketing.errors import NotFound
from ticketing.models import utcnow

MAX_ROWS = 5000
# per base row set: the instants a department checks a row by (column, Chinese header)
TIMES: dict[str, list[tuple[str, str]]] = {
    "suborder": [
        ("dispatched_at", "派单时间"),
        ("accept_due", "签收时限"),
        ("responded_at", "签收/退回时间"),
        ("deadline", "办结时限"),
        ("replied_at", "回复时间"),
    ],
    "evaluation": [("at", "评价时间")],
    "warning": [("at", "预警时间")],
}


@dataclass
class TracedRow:
    ticket_id: int
    number: str
    title: str
    suborder_id: int
    hit: bool | None  # in the numerator (rates); None for counts and averages
    appealed: bool  # taken out by an accepted appeal (not counted)
    times: dict[str, datetime | None]
    extra: dict[str, Any]
    hours: float | None = None


def indicator_rows(
    session: Session,
    settings: Settings,
    period: Period,
    department: str,
    code: str,
    *,
    limit: int = MAX_ROWS,
    offset: int = 0,
    ticket_id: int | None = None,
    longest_first: bool = False,
    suborder_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> list[TracedRow]:
    """The rows of `code` for `department` in `period` (the denominator, hits marked), by
    ticket number, or for an average the longest first (the portrait's slowest matters); a page
    of `limit` rows from `offset` (the order is total: ties broken by sub-order). Only that
    department's rows are read (its filter is inside the base row set), and of the sub-order
    rows only `suborder_ids` when given. A running period is read as of `now` (as `figures`)."""
    period = as_of(period, now or utcnow())
    ind = INDICATORS.get(code)
    if ind is None:
        raise NotFound(f"未知考核指标：{code}", indicator=code)
    dialect = session.get_bind().dialect.name
    tune(session)
    lookback = score_config(settings).lookback_days
    b = base_for(ind.source, period, dialect, lookback, department, suborder_ids)
    parts = ind.parts(b, period, dialect)
    excluded = appealed(b, accepted_appeals(session, period).get(ind.appeal_under, []))
    times = TIMES[ind.source]
    extra_cols = {"overall": "overall", "source": "source"} if ind.source == "evaluation" else {}
    if ind.source == "warning":
        extra_cols = {"level": "level", "step": "step"}
    cols = [
        b.c.ticket_id,
        b.c.so_id,
        (parts.hit if parts.hit is not None else literal(None)).label("hit"),
        (excluded if excluded is not None else literal(False)).label("appealed"),
        (parts.measure if parts.measure is not None else literal(None)).label("seconds"),
        *[b.c[c] for c, _ in times],
        *[b.c[c] for c in extra_cols],
    ]
    where = [b.c.dept == department, parts.rows]
    if ticket_id is not None:
        where.append(b.c.ticket_id == ticket_id)
    if longest_first and parts.measure is not None:
        # the page is cut before the tickets are joined: only its rows read their ticket
        page = (
            select(*cols)
            .where(*where)
            .order_by(parts.measure.desc(), b.c.so_id)
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
        q = (
            select(page, T.c.number, T.c.title)
            .select_from(page.join(T, T.c.id == page.c.ticket_id))
            .order_by(page.c.seconds.desc(), page.c.so_id)
        )
    else:
        q = (
            select(*cols, T.c.number, T.c.title)
            .select_from(b.join(T, T.c.id == b.c.ticket_id))
            .where(*where)
            .order_by(T.c.number, b.c.so_id)
            .limit(limit)
            .offset(offset)
        )
    out: list[TracedRow] = []
    for r in session.execute(q).mappings():
        out.append(
            TracedRow(
                ticket_id=r["ticket_id"],
                number=r["number"],
                title=r["title"],
                suborder_id=r["so_id"],
                hit=None if parts.hit is None else bool(r["hit"]),
                appealed=bool(r["appealed"]),
                times={c: as_naive(r[c]) for c, _ in times},
                extra={k: r[k] for k in extra_cols},
                hours=None if r["seconds"] is None else float(r["seconds"]) / 3600.0,
            )
        )
    return out


def in_indicator(
    session: Session, settings: Settings, period: Period, department: str, code: str, ticket_id: int
) -> bool:
    """Whether the ticket is one of the rows of `code` for `department` in `period`."""
    return bool(indicator_rows(session, settings, period, department, code, ticket_id=ticket_id))


SLOWEST = 10
SLOWEST_BY = "avg_handle_hours"


def slowest_ids(
    session: Session, settings: Settings, period: Period, n: int = SLOWEST
) -> dict[str, list[int]]:
    """department → its `n` slowest sub-orders of the period (SLOWEST_BY's rows, the longest
    first), for every department in one pass: what the month cache keeps for the portrait."""
    ind = INDICATORS[SLOWEST_BY]
    dialect = session.get_bind().dialect.name
    tune(session)
    b = base_for(ind.source, period, dialect, score_config(settings).lookback_days)
    parts = ind.parts(b, period, dialect)
    assert parts.measure is not None
    ranked = (
        select(
            b.c.dept,
            b.c.so_id,
            func.row_number()
            .over(partition_by=b.c.dept, order_by=(parts.measure.desc(), b.c.so_id))
            .label("n"),
        )
        .where(parts.rows)
        .subquery("ranked")
    )
    out: dict[str, list[int]] = {}
    q = (
        select(ranked.c.dept, ranked.c.so_id)
        .where(ranked.c.n <= n)
        .order_by(ranked.c.dept, ranked.c.n)
    )
    for dept, so_id in session.execute(q):
        out.setdefault(dept, []).append(int(so_id))
    return out
