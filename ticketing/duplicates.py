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
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col
from sqlmodel import select as sqlselect

from config.settings import Settings
from ticketing.models import SubOrder, Ticket, TicketStatus
from ticketing.text import bigrams, dice

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


def score(a: str, b: str) -> float:
    """How alike two subjects are (0.0–1.0; a repeat at settings.duplicate_similarity or more)."""
    return dice(bigrams(a), bigrams(b))


@lru_cache(maxsize=4)
def _query(by_phone: bool, by_enterprise: bool) -> Any:
    """Built once per shape with bind parameters (building and caching the statement per intake
    cost more than running it)."""
    who = []
    if by_phone:
        who.append(_T.c.submitter_phone.in_(bindparam("phones", expanding=True)))
    if by_enterprise:
        who.append(_T.c.enterprise_id.in_(bindparam("ents", expanding=True)))
    return (
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
            _T.c.created_at >= bindparam("since"),
            or_(
                _T.c.status != TicketStatus.closed.value,
                and_(_T.c.closed_at.is_not(None), _T.c.closed_at >= bindparam("closed_since")),
            ),
        )
        .order_by(_T.c.id.desc())
        .limit(MAX_CANDIDATES)
    )


def find(
    conn: Connection, settings: Settings, candidates: list[Candidate], now: datetime
) -> list[Match | None]:
    """For each candidate, the earlier matter it repeats (None: none). One query for all."""
    out: list[Match | None] = [None] * len(candidates)
    phones = sorted({c.phone for c in candidates if c.phone})
    ents = sorted({c.enterprise_id for c in candidates if c.enterprise_id is not None})
    if not phones and not ents:
        return out
    params: dict[str, Any] = {
        "since": now - timedelta(days=settings.duplicate_lookback_days),
        "closed_since": now - timedelta(days=settings.duplicate_closed_days),
    }
    if phones:
        params["phones"] = phones
    if ents:
        params["ents"] = ents
    rows = conn.execute(_query(bool(phones), bool(ents)), params).all()
    if not rows:
        return out
    by_phone: dict[str, list[Any]] = {}
    by_ent: dict[int, list[Any]] = {}
    for row in rows:
        if row[2]:
            by_phone.setdefault(row[2], []).append(row)
        if row[3] is not None:
            by_ent.setdefault(row[3], []).append(row)
    threshold = settings.duplicate_similarity
    for i, c in enumerate(candidates):
        mine = by_phone.get(c.phone or "", []) + by_ent.get(c.enterprise_id or -1, [])
        best: Match | None = None
        mine = [r for r in mine if r[4] == c.category]
        words = bigrams(c.text) if mine else frozenset()
        for tid, number, _phone, _ent, _category, title, content, root in mine:
            score = dice(words, bigrams(subject(title, content)))
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
