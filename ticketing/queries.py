"""Read side: ticket lookup, filtered/full-text lists, department inboxes, the enterprise file (一企一档).

Full-text over title+content: SQLite uses the FTS5 trigram table `ticket_fts` (migration
0002_search; kept in sync by triggers) for terms of 3+ characters and LIKE for shorter ones;
PostgreSQL uses ILIKE, served by pg_trgm GIN indexes on title and content (pg_trgm splits CJK text
into trigrams under the C.UTF-8 ctype the test and default clusters use). Several whitespace
separated terms must all match.

The total of a search is exact, except when a term is shorter than 3 characters: no trigram index
can serve such a term, so counting every match is a scan of the whole table (≈0.1–0.3 s at 200k
tickets). Then counting stops after the current page, COUNT_AHEAD_PAGES more pages and one row
(cap = offset + page_size * (COUNT_AHEAD_PAGES + 1) + 1): `total` is exact when below that cap,
else a lower bound ("at least cap"), which still lets a pager offer the next pages. On PostgreSQL
every search is planned with its actual pattern (plan_cache_mode = force_custom_plan, per
transaction): a prepared statement's generic plan scanned the whole trigram index instead.
The page itself walks the created_at index newest first and stops after page_size matches.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, exists, func, or_, text
from sqlmodel import Session, col, select

from ticketing.departments import get_department
from ticketing.errors import InvalidInput, NotFound
from ticketing.models import (
    Caller,
    Category,
    Channel,
    Enterprise,
    SubOrder,
    SubOrderStatus,
    Ticket,
    TicketStatus,
    Urgency,
    Warning,
)
from ticketing.phones import normalise_phone
from ticketing.sla import to_utc_naive
from ticketing.text import has_dropped
from ticketing.uscc import validate_uscc

MAX_PAGE_SIZE = 200
MAX_TERMS = 5
COUNT_AHEAD_PAGES = 2  # a short-term search counts at most this many pages past the current one


class TicketFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: TicketStatus | None = None
    department: str | None = Field(default=None, max_length=32)
    channel: Channel | None = None
    category: Category | None = None
    urgency: Urgency | None = None
    warning: Warning | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = Field(default=None, max_length=200)
    uscc: str | None = Field(default=None, max_length=40)
    phone: str | None = Field(default=None, max_length=40)


def _paging(page: int, page_size: int) -> tuple[int, int]:
    if not isinstance(page, int) or page < 1:
        raise InvalidInput("页码必须是正整数", field="page")
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"每页条数必须在1-{MAX_PAGE_SIZE}之间", field="page_size")
    return (page - 1) * page_size, page_size


def get_ticket_by_number(session: Session, number: str) -> Ticket:
    num = (number or "").strip().upper()
    ticket = (
        session.exec(select(Ticket).where(Ticket.number == num)).first()
        if 0 < len(num) <= 32
        else None
    )
    if ticket is None:
        raise NotFound(f"未找到工单：{number}", field="number")
    return ticket


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _terms(q: str | None) -> list[str]:
    """The search's terms, as every part of the search reads them."""
    return (q or "").split()[:MAX_TERMS]


def check_search_text(q: str | None) -> None:
    """A search with characters stored text never holds (ticketing.text drops them: NUL, other
    control and zero-width characters) is refused as the client's input, not passed to FTS5."""
    if has_dropped(q):
        raise InvalidInput("搜索内容含有控制字符或不可见字符，请删除后重试", field="q")


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _scan_terms(q: str | None) -> bool:
    """True when some search term is too short for a trigram index (so matching it scans)."""
    return any(len(t) < 3 for t in _terms(q))


def _text_conditions(session: Session, q: str) -> list[ColumnElement[bool]]:
    terms = _terms(q)
    conds: list[ColumnElement[bool]] = []
    sqlite = session.get_bind().dialect.name == "sqlite"
    for i, term in enumerate(terms):
        if sqlite and len(term) >= 3:
            phrase = _fts_phrase(term)
            # one bind name per term: with a shared name, every term's subquery matched the last
            name = f"fts{i}"
            conds.append(
                col(Ticket.id).in_(
                    select(text("rowid"))
                    .select_from(text("ticket_fts"))
                    .where(text(f"ticket_fts MATCH :{name}").bindparams(**{name: phrase}))
                )
            )
        else:
            pat = f"%{_like_escape(term)}%"
            # SQLite's LIKE is already ASCII case-insensitive (as its lower() is), and a term
            # without cased letters (Chinese) matches the same rows under LIKE as under ILIKE:
            # skipping the per-row case folding makes the scan 2.5-3.5x faster.
            if sqlite or term.lower() == term.upper():
                conds.append(
                    or_(
                        col(Ticket.title).like(pat, escape="\\"),
                        col(Ticket.content).like(pat, escape="\\"),
                    )
                )
            else:
                conds.append(
                    or_(
                        col(Ticket.title).ilike(pat, escape="\\"),
                        col(Ticket.content).ilike(pat, escape="\\"),
                    )
                )
    return conds


def _conditions(session: Session, f: TicketFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.status:
        conds.append(col(Ticket.status) == f.status.value)
    if f.channel:
        conds.append(col(Ticket.channel) == f.channel.value)
    if f.category:
        conds.append(col(Ticket.category) == f.category.value)
    if f.urgency:
        conds.append(col(Ticket.urgency) == f.urgency.value)
    if f.warning:
        conds.append(col(Ticket.warning) == f.warning.value)
    if f.created_from:
        conds.append(col(Ticket.created_at) >= to_utc_naive(f.created_from))
    if f.created_to:
        conds.append(col(Ticket.created_at) < to_utc_naive(f.created_to))
    if f.department:
        conds.append(
            exists().where(
                and_(
                    col(SubOrder.ticket_id) == Ticket.id,
                    col(SubOrder.department_code) == f.department,
                )
            )
        )
    if f.uscc:
        uscc = validate_uscc(f.uscc)
        conds.append(
            col(Ticket.enterprise_id).in_(select(Enterprise.id).where(Enterprise.uscc == uscc))
        )
    if f.phone:
        phone = normalise_phone(f.phone)
        conds.append(
            or_(
                col(Ticket.submitter_phone) == phone,
                col(Ticket.caller_id).in_(select(Caller.id).where(Caller.phone == phone)),
            )
        )
    if f.q and f.q.strip():
        check_search_text(f.q)
        conds.extend(_text_conditions(session, f.q.strip()))
    return conds


def list_tickets(
    session: Session,
    filters: TicketFilter | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[Ticket], int]:
    """(page of tickets newest first, total matching — a capped lower bound for a search with a
    term shorter than 3 characters, see the module docstring)."""
    offset, limit = _paging(page, page_size)
    filters = filters or TicketFilter()
    conds = _conditions(session, filters)
    if filters.q and filters.q.strip() and session.get_bind().dialect.name == "postgresql":
        # psycopg prepares a statement after 5 runs; PostgreSQL's generic plan for `LIKE $1`
        # cannot see the pattern and picks a full trigram-index scan even for a 2-character
        # term (~300 ms at 200k). Plan each search with its actual pattern (this transaction only).
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    if _scan_terms(filters.q):
        # Counting stops at the cap: a LIMITed scan in any order (a single ordered walk serving
        # both page and count measured worse on PostgreSQL, whose LIKE estimate for a short
        # term is far too low, so it seq-scanned and sorted instead).
        cap = offset + limit * (COUNT_AHEAD_PAGES + 1) + 1
        hits = select(Ticket.id).where(*conds).limit(cap).subquery()
        total = session.exec(select(func.count()).select_from(hits)).one()
    else:
        fts_total = _fts_count(session, filters)
        if fts_total is None:
            total = session.exec(select(func.count()).select_from(Ticket).where(*conds)).one()
        else:
            total = fts_total
    items = list(
        session.exec(
            select(Ticket)
            .where(*conds)
            .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    return items, int(total)


def _fts_count(session: Session, f: TicketFilter) -> int | None:
    """SQLite, a search and no other filter: the FTS index counts its matches alone (a count
    through the ticket table looked up every matching row: ~2x the whole search at 200k)."""
    if session.get_bind().dialect.name != "sqlite" or set(f.model_dump(exclude_none=True)) != {"q"}:
        return None
    terms = _terms(f.q)
    if not terms or any(len(t) < 3 for t in terms):
        return None
    match = " AND ".join(_fts_phrase(t) for t in terms)
    return session.execute(_FTS_COUNT, {"m": match}).scalar_one()


_FTS_COUNT = text("SELECT count(*) FROM ticket_fts WHERE ticket_fts MATCH :m")


def department_inbox(
    session: Session,
    department_code: str,
    status: str | list[str] | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[tuple[SubOrder, Ticket]], int]:
    """A department's sub-orders (with their tickets), most urgent deadline first."""
    offset, limit = _paging(page, page_size)
    get_department(session, department_code)
    statuses = [status] if isinstance(status, str) else list(status or [])
    allowed = {s.value for s in SubOrderStatus}
    bad = [s for s in statuses if s not in allowed]
    if bad:
        raise InvalidInput(f"未知的子工单状态：{'、'.join(map(str, bad))}", field="status")
    conds = [col(SubOrder.department_code) == department_code]
    if statuses:
        conds.append(col(SubOrder.status).in_(statuses))
    total = session.exec(select(func.count()).select_from(SubOrder).where(*conds)).one()
    order = (col(SubOrder.deadline_at).asc().nulls_last(), col(SubOrder.id))
    # Page the narrow sub-order keys first (served by ix_suborder_dept_status alone), then join
    # only that page's tickets: sorting the department's joined rows cost ~50-80 ms at 200k.
    page_ids = select(SubOrder.id).where(*conds).order_by(*order).offset(offset).limit(limit)
    rows = session.exec(
        select(SubOrder, Ticket)
        .join(Ticket, col(Ticket.id) == SubOrder.ticket_id)
        .where(col(SubOrder.id).in_(page_ids.scalar_subquery()))
        .order_by(*order)
    )
    return [(so, t) for so, t in rows], int(total)


def enterprise_file(session: Session, uscc: str) -> tuple[Enterprise, list[Ticket]]:
    """一企一档: the enterprise and all its tickets, newest first."""
    code = validate_uscc(uscc)
    ent = session.exec(select(Enterprise).where(Enterprise.uscc == code)).first()
    if ent is None:
        raise NotFound(f"未找到统一社会信用代码为 {code} 的企业档案", field="uscc")
    tickets = list(
        session.exec(
            select(Ticket)
            .where(Ticket.enterprise_id == ent.id)
            .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
        )
    )
    return ent, tickets


# Tickets a dispatcher must place by hand: waiting (low confidence, no rule, every sub-order
# returned) or reopened after an unsatisfied evaluation.
MANUAL_QUEUE_STATUSES = (TicketStatus.pending_dispatch.value, TicketStatus.reopened.value)


def dispatch_queue(
    session: Session, page: int = 1, page_size: int = 20
) -> tuple[list[Ticket], int]:
    """The manual-dispatch queue, oldest first (the longest wait is served first)."""
    offset, limit = _paging(page, page_size)
    cond = col(Ticket.status).in_(MANUAL_QUEUE_STATUSES)
    total = session.exec(select(func.count()).select_from(Ticket).where(cond)).one()
    items = list(
        session.exec(
            select(Ticket)
            .where(cond)
            .order_by(col(Ticket.created_at).asc(), col(Ticket.id).asc())
            .offset(offset)
            .limit(limit)
        )
    )
    return items, int(total)


OPEN_STATUSES = (
    TicketStatus.pending_dispatch.value,
    TicketStatus.dispatched.value,
    TicketStatus.reopened.value,
)


def desk_overview(session: Session) -> dict[str, dict[str, int]]:
    """Tickets out with departments (dispatched) and awaiting the submitter's rating (resolved),
    counted by warning level: what the dispatch desk shows beside its manual queue (one grouped
    read on ix_ticket_status_created's leading column)."""
    rows = session.exec(
        select(Ticket.status, Ticket.warning, func.count())
        .where(col(Ticket.status).in_((TicketStatus.dispatched.value, TicketStatus.resolved.value)))
        .group_by(Ticket.status, Ticket.warning)
    ).all()
    out: dict[str, dict[str, int]] = {"dispatched": {}, "resolved": {}}
    for status, warning, n in rows:
        out[str(status)][str(warning)] = int(n)
    return out


def intake_summary(session: Session, since: datetime) -> dict[str, dict[str, int]]:
    """Tickets created since `since` (UTC) counted by channel and by category, and the open
    tickets counted by warning level: the leader's overview."""
    since = to_utc_naive(since)
    out: dict[str, dict[str, int]] = {}
    for key, column in (("channel", Ticket.channel), ("category", Ticket.category)):
        rows = session.exec(
            select(column, func.count()).where(Ticket.created_at >= since).group_by(column)
        ).all()
        out[key] = {str(k): int(n) for k, n in rows}
    rows = session.exec(
        select(Ticket.warning, func.count())
        .where(col(Ticket.status).in_(OPEN_STATUSES))
        .group_by(Ticket.warning)
    ).all()
    out["warning"] = {str(k): int(n) for k, n in rows}
    return out


def overdue_tickets(session: Session, now: datetime, limit: int = 50) -> list[Ticket]:
    """Open tickets past their committed deadline, the longest overdue first."""
    return list(
        session.exec(
            select(Ticket)
            .where(
                col(Ticket.status).in_(OPEN_STATUSES),
                col(Ticket.deadline_at).is_not(None),
                col(Ticket.deadline_at) < to_utc_naive(now),
            )
            .order_by(col(Ticket.deadline_at).asc(), col(Ticket.id).asc())
            .limit(limit)
        )
    )


def caller_history(session: Session, phone: str, limit: int = 10) -> list[Ticket]:
    """A caller's tickets, newest first, through the caller row and ix_ticket_caller_id (every
    intake with a phone links its caller): the agent console's screen-pop must not scan (a
    TicketFilter(phone=…) also matches submitter_phone, which has no index)."""
    caller_id = session.exec(
        select(Caller.id).where(Caller.phone == normalise_phone(phone))
    ).first()
    if caller_id is None:
        return []
    return list(
        session.exec(
            select(Ticket)
            .where(Ticket.caller_id == caller_id)
            .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
            .limit(limit)
        )
    )


def extension_requests(session: Session, limit: int = 50) -> list[tuple[SubOrder, Ticket]]:
    """Sub-orders waiting for a dispatcher's decision on an extension, oldest request first."""
    rows = session.exec(
        select(SubOrder, Ticket)
        .join(Ticket, col(Ticket.id) == SubOrder.ticket_id)
        .where(SubOrder.status == SubOrderStatus.extension_requested.value)
        .order_by(col(SubOrder.deadline_at).asc().nulls_last(), col(SubOrder.id))
        .limit(limit)
    )
    return [(so, t) for so, t in rows]


def returns_awaiting(session: Session, limit: int = 50) -> list[tuple[SubOrder, Ticket]]:
    """Returns ("not ours") of a ticket's current round the dispatcher has not yet handled while
    other departments work on: the ticket cannot resolve until each is re-dispatched or closed.
    (A ticket whose every sub-order was returned is in the dispatch queue itself.)"""
    rows = session.exec(
        select(SubOrder, Ticket)
        .join(Ticket, col(Ticket.id) == SubOrder.ticket_id)
        .where(
            SubOrder.status == SubOrderStatus.returned.value,
            col(SubOrder.return_handled_at).is_(None),
            col(SubOrder.round) == col(Ticket.round),
            Ticket.status == "dispatched",
        )
        .order_by(col(SubOrder.id))
        .limit(limit)
    )
    return [(so, t) for so, t in rows]
