"""Each ticket's keywords, read once and stored (ticket_keyword), so the analysis counts words
with a grouped query instead of segmenting the history on every page view.

Where the words come from:
- the ticket's title and content, segmented by the knowledge base's jieba tokenizer
  (ticketing.knowledge.segment.plain_words: the hotline's dictionary and its spoken stopwords),
  less hotspots.yaml's own stopwords (你好/请问/我想/那个 …) and words under `min_chars`;
  the `per_ticket` most telling (frequency in the ticket × jieba's IDF) are kept;
- each call transcript attached to it: its text the same way, plus every word the ASR keyword
  spotter found in it (asr.keywords: stored in the transcript_attached event as `keywords`),
  which always counts.

When: not on the intake path (segmenting costs about a millisecond a ticket, several times what
intake spends). The scheduler's `hotspots` job (`run_hotspot_index`, every minute) reads the tickets
not yet marked in hotspot_indexed, in batches; the ASR job adds a transcript's words when it
attaches (`index_transcript`). Both insert with ON CONFLICT DO NOTHING, so the two and a second
scheduler never clash.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from config.loader import load_yaml
from config.settings import Settings
from ticketing.hotspots.models import HotspotIndexed, TicketKeyword
from ticketing.knowledge.segment import normalise, plain_words, word_weight
from ticketing.models import Ticket, TicketEvent, utcnow

TRANSCRIPT_EVENT = "transcript_attached"
MAX_WORD = 32  # ticket_keyword.word's length
BATCH = 1000


@dataclass(frozen=True)
class KeywordRules:
    per_ticket: int
    min_chars: int
    stopwords: frozenset[str]


def keyword_rules(settings: Settings) -> KeywordRules:
    cfg = load_yaml(settings, "hotspots.yaml").get("keywords") or {}
    return _rules(
        int(cfg.get("per_ticket", 8)),
        int(cfg.get("min_chars", 2)),
        tuple(str(w) for w in cfg.get("stopwords") or ()),
    )


@lru_cache(maxsize=8)
def _rules(per_ticket: int, min_chars: int, stopwords: tuple[str, ...]) -> KeywordRules:
    return KeywordRules(per_ticket, min_chars, frozenset(normalise(w) for w in stopwords))


def text_keywords(settings: Settings, text: str) -> list[str]:
    """The most telling words of one text (at most `per_ticket`), most telling first."""
    rules = keyword_rules(settings)
    counts = Counter(
        w
        for w in plain_words(settings, text)
        if rules.min_chars <= len(w) <= MAX_WORD and w not in rules.stopwords
    )
    ranked = sorted(counts, key=lambda w: (-counts[w] * word_weight(w), w))
    return ranked[: rules.per_ticket]


def ticket_keywords(
    settings: Settings, title: str, content: str, transcripts: Iterable[dict[str, Any]] = ()
) -> list[str]:
    """A ticket's keywords: its text's, then each transcript's (spotted words first)."""
    words = text_keywords(settings, f"{title}\n{content}")
    for detail in transcripts:
        words.extend(_transcript_words(settings, detail))
    return list(dict.fromkeys(words))


def _transcript_words(settings: Settings, detail: dict[str, Any]) -> list[str]:
    spotted = [normalise(str(k)) for k in detail.get("keywords") or () if k]
    spotted = [w for w in spotted if 0 < len(w) <= MAX_WORD]
    return [*spotted, *text_keywords(settings, str(detail.get("text") or ""))]


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.connection().execute(pg_insert(table).on_conflict_do_nothing(), list(rows))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.connection().execute(sqlite_insert(table).on_conflict_do_nothing(), list(rows))


_KEYWORDS: Table = TicketKeyword.__table__  # type: ignore[attr-defined]
_INDEXED: Table = HotspotIndexed.__table__  # type: ignore[attr-defined]
_TICKET: Table = Ticket.__table__  # type: ignore[attr-defined]


def _keyword_rows(
    ticket_id: int, created_at: datetime, channel: str, words: Iterable[str]
) -> list[dict[str, Any]]:
    return [
        {"ticket_id": ticket_id, "word": w, "created_at": created_at, "channel": channel}
        for w in words
    ]


def index_pending(session: Session, settings: Settings, *, limit: int = BATCH) -> int:
    """Read up to `limit` tickets not indexed yet (oldest first) and store their keywords.
    Returns how many tickets were indexed (0: nothing left)."""
    rows = (
        session.connection()
        .execute(
            sa_select(
                _TICKET.c.id,
                _TICKET.c.title,
                _TICKET.c.content,
                _TICKET.c.created_at,
                _TICKET.c.channel,
                _TICKET.c.duplicate_of_id,
                _TICKET.c.simulated,
            )
            .outerjoin(_INDEXED, _INDEXED.c.ticket_id == _TICKET.c.id)
            .where(_INDEXED.c.ticket_id.is_(None))
            .order_by(_TICKET.c.id)
            .limit(limit)
        )
        .all()
    )
    if not rows:
        return 0
    ids = [r[0] for r in rows]
    transcripts: dict[int, list[dict[str, Any]]] = {}
    for tid, detail in session.exec(
        select(TicketEvent.ticket_id, TicketEvent.detail)
        .where(col(TicketEvent.ticket_id).in_(ids), TicketEvent.action == TRANSCRIPT_EVENT)
        .order_by(col(TicketEvent.id))
    ):
        transcripts.setdefault(tid, []).append(dict(detail or {}))
    keyword_rows: list[dict[str, Any]] = []
    now = utcnow()
    for tid, title, content, created_at, channel, duplicate_of, simulated in rows:
        if duplicate_of is not None or simulated:
            continue  # never counted (a 重复件 counts through its first ticket)
        words = ticket_keywords(settings, title or "", content or "", transcripts.get(tid, ()))
        keyword_rows.extend(_keyword_rows(tid, created_at, channel, words))
    insert_ignore(session, _KEYWORDS, keyword_rows)
    insert_ignore(session, _INDEXED, [{"ticket_id": t, "indexed_at": now} for t in ids])
    return len(rows)


def index_transcript(
    session: Session, settings: Settings, ticket_id: int, detail: dict[str, Any]
) -> None:
    """A transcript attached to a ticket now (its event's detail: `text`, `keywords`): its words
    join the ticket's. Written whether or not the ticket itself was indexed yet (the indexer reads
    the same event later; the rows are the same)."""
    row = session.exec(
        select(Ticket.created_at, Ticket.channel, Ticket.duplicate_of_id, Ticket.simulated).where(
            Ticket.id == ticket_id
        )
    ).first()
    if row is None or row[2] is not None or row[3]:
        return  # no such ticket, or one never counted
    words = list(dict.fromkeys(_transcript_words(settings, detail)))
    insert_ignore(session, _KEYWORDS, _keyword_rows(ticket_id, row[0], row[1], words))


def unindexed_count(session: Session) -> int:
    """Tickets whose keywords are not stored yet (the page says so when there are any)."""
    total = session.exec(select(func.count()).select_from(Ticket)).one()
    done = session.exec(select(func.count()).select_from(HotspotIndexed)).one()
    return max(int(total) - int(done), 0)


def index_all(session: Session, settings: Settings, *, budget_s: float | None = None) -> int:
    """Index batches until none is left (or `budget_s` has passed). Returns tickets indexed."""
    began, total = time.monotonic(), 0
    while True:
        n = index_pending(session, settings)
        total += n
        session.flush()
        if n < BATCH or (budget_s is not None and time.monotonic() - began > budget_s):
            return total


def run_hotspot_index(snapshot: dict[str, Any] | None = None) -> dict[str, int]:
    """The scheduler's job (RQ, every minute): index the tickets filed since, one transaction per
    batch, for at most ~50 s (a large backlog, e.g. after the upgrade, goes on next minute); then
    recompute the stale unfiltered months of the last year (hotspot_month), so the page's default
    view reads them instead of counting."""
    from config.database import make_engine, session_scope
    from ticketing.hotspots.report import refresh_cache
    from ticketing.jobs import _settings

    settings = _settings(snapshot)
    engine = make_engine(settings.resolved_database_url)
    began, total = time.monotonic(), 0
    try:
        while time.monotonic() - began < 50:
            with session_scope(engine) as s:
                n = index_pending(s, settings)
            total += n
            if n < BATCH:
                break
        months = refresh_cache(lambda: session_scope(engine), settings)
        return {"indexed": total, "months": months}
    finally:
        engine.dispose()
