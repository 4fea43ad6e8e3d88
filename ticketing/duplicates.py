"""重复件: a new matter that repeats an earlier one of the same submitter.

Same phone or same enterprise (统一社会信用代码), same category, a similar subject (ticketing.text
similarity of title + the content's start, at least settings.duplicate_similarity), while the
earlier ticket is open or was closed within settings.duplicate_closed_days. The new ticket is
linked to the chain's first ticket (`duplicate_of_id`), so the department sees the history and the
assessment counts the chain once (`counts_once`: a ticket with duplicate_of_id set).

Intake is a hot path: one SELECT per batch, through ix_ticket_phone_created (phone, created_at)
and ix_ticket_enterprise_id, bounded by settings.duplicate_lookback_days, and only the start of
each earlier ticket's content is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col
from sqlmodel import select as sqlselect

from config.settings import Settings
from ticketing.models import SubOrder, Ticket, TicketStatus
from ticketing.text import similarity

PREFIX_CHARS = 300  # how much of a content the comparison reads
MAX_CANDIDATES = 500  # rows one batch's lookup reads at most (newest first)
_T = Ticket.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Candidate:
    """What the comparison needs of one new matter."""

    phone: str | None
    enterprise_id: int | None
    category: str
    text: str


@dataclass(frozen=True)
class Match:
    ticket_id: int  # the chain's first ticket (what duplicate_of_id points at)
    earlier_id: int  # the ticket it resembles most
    earlier_number: str
    score: float


def subject(title: str | None, content: str | None) -> str:
    """The text two matters are compared on."""
    return f"{title or ''}\n{(content or '')[:PREFIX_CHARS]}"


def find(
    conn: Connection, settings: Settings, candidates: list[Candidate], now: datetime
) -> list[Match | None]:
    """For each candidate, the earlier matter it repeats (None: none). One query for all."""
    out: list[Match | None] = [None] * len(candidates)
    phones = sorted({c.phone for c in candidates if c.phone})
    ents = sorted({c.enterprise_id for c in candidates if c.enterprise_id is not None})
    if not phones and not ents:
        return out
    who = []
    if phones:
        who.append(_T.c.submitter_phone.in_(phones))
    if ents:
        who.append(_T.c.enterprise_id.in_(ents))
    closed_since = now - timedelta(days=settings.duplicate_closed_days)
    rows = conn.execute(
        select(
            _T.c.id,
            _T.c.number,
            _T.c.submitter_phone,
            _T.c.enterprise_id,
            _T.c.category,
            _T.c.title,
            func.substr(_T.c.content, 1, PREFIX_CHARS),
            _T.c.duplicate_of_id,
        )
        .where(
            or_(*who),
            _T.c.created_at >= now - timedelta(days=settings.duplicate_lookback_days),
            or_(
                _T.c.status != TicketStatus.closed.value,
                and_(_T.c.closed_at.is_not(None), _T.c.closed_at >= closed_since),
            ),
        )
        .order_by(_T.c.id.desc())
        .limit(MAX_CANDIDATES)
    ).all()
    if not rows:
        return out
    threshold = settings.duplicate_similarity
    for i, c in enumerate(candidates):
        best: Match | None = None
        for tid, number, phone, ent, category, title, content, root in rows:
            if category != c.category:
                continue
            if not ((c.phone and phone == c.phone) or (c.enterprise_id and ent == c.enterprise_id)):
                continue
            score = similarity(c.text, subject(title, content))
            if score >= threshold and (best is None or score > best.score):
                best = Match(root or tid, tid, number, round(score, 3))
        out[i] = best
    return out


@dataclass(frozen=True)
class Related:
    """The earlier matter a 重复件 repeats, as the department handling the repeat sees it."""

    number: str
    title: str
    status: str
    created_at: datetime
    closed_at: datetime | None
    replies: list[str]


def related_ticket(
    session: Session, ticket: Ticket, department: str | None = None
) -> Related | None:
    """The chain's first ticket with its departments' replies (the history the department needs,
    whether or not it handled that one; `department` is accepted for symmetry and not needed)."""
    if ticket.duplicate_of_id is None:
        return None
    earlier = session.get(Ticket, ticket.duplicate_of_id)
    if earlier is None:
        return None
    replies = [
        r
        for r in session.exec(
            sqlselect(SubOrder.reply)
            .where(SubOrder.ticket_id == earlier.id, col(SubOrder.reply).is_not(None))
            .order_by(col(SubOrder.id))
        )
        if r
    ]
    return Related(
        earlier.number,
        earlier.title,
        earlier.status,
        earlier.created_at,
        earlier.closed_at,
        replies,
    )
