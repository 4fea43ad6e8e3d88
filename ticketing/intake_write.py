"""The writing half of intake: drafts (validated, classified matters) into rows, many per transaction.

Why batches: on the web, many intakes arrive at once, and nearly all of an intake's cost is fixed
per statement and per transaction (BEGIN, COMMIT, the numbering counter, SQLAlchemy's per-execute
work), not per row. `write_drafts` writes N drafts with a fixed number of statements: one call_id
lookup, one caller upsert, one counter bump per local day, one INSERT of the tickets, one of the
sub-orders, one of the events. A single `submit` is a batch of one through the same code, so there
is one write path. Where an auto-dispatched ticket goes is ticketing.dispatch_rule.decide, the same
decision dispatch.auto_dispatch applies through the ORM.

Numbers (一事一单) are taken before the tickets are inserted, in the same transaction: a rollback
returns them, so committed numbers stay gap-free. On PostgreSQL the day's counter row stays locked
until COMMIT; a batch holds it once for all its tickets, where single intakes queued on it each.

A draft that names its departments (a dispatcher at intake) goes through the ORM dispatch path,
as any later dispatch does, inside a SAVEPOINT when it shares the batch: its refusal leaves the
other drafts' rows alone. An InvalidInput found while writing (an unknown department) is that
draft's result, not the batch's; any other error fails the whole transaction, and the caller
decides (the web batcher retries each draft on its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Any, TypeVar

from sqlalchemy import TextClause, bindparam, case, func, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import class_mapper, make_transient_to_detached
from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing import duplicates, events, handoff
from ticketing.department_cache import all_cached_departments, cached_departments
from ticketing.dispatch import clean_codes, dispatch
from ticketing.dispatch_rule import Decision, decide
from ticketing.drafts import DEDUPE_CHANNELS, Draft
from ticketing.errors import Conflict, InvalidInput, TicketingError
from ticketing.models import (
    Caller,
    Department,
    Enterprise,
    SubOrder,
    SubOrderStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from ticketing.notices import create_acceptance_notice
from ticketing.numbering import next_number, next_numbers
from ticketing.sla import deadline_for

_M = TypeVar("_M", Ticket, SubOrder)
_TICKET_TABLE = Ticket.__table__  # type: ignore[attr-defined]
_SUBORDER_TABLE = SubOrder.__table__  # type: ignore[attr-defined]
_TICKET_INSERT = _TICKET_TABLE.insert().returning(_TICKET_TABLE.c.id)
# A batch is inserted with one executemany and its ids read back by their natural keys (the
# ticket number, issued before the insert; a sub-order's ticket + department), one SELECT each:
# on SQLite an ordered RETURNING would fall back to one statement per row.
_TICKETS_INSERT = _TICKET_TABLE.insert()
_SUBORDERS_INSERT = _SUBORDER_TABLE.insert()
_TICKET_IDS = select(_TICKET_TABLE.c.number, _TICKET_TABLE.c.id).where(
    _TICKET_TABLE.c.number.in_(bindparam("numbers", expanding=True))
)
_SUBORDER_IDS = select(
    _SUBORDER_TABLE.c.ticket_id, _SUBORDER_TABLE.c.department_code, _SUBORDER_TABLE.c.id
).where(_SUBORDER_TABLE.c.ticket_id.in_(bindparam("tickets", expanding=True)))
# Columns intake never sets, at their model defaults (every column is given, so the attached
# instance below has nothing left to load).
_TICKET_DEFAULTS: dict[str, Any] = {
    "warning": "none",
    "dispatch_mode": None,
    "round": 1,
    "reopen_count": 0,
    "responsible_person": None,
    "resolved_at": None,
    "closed_at": None,
    "conduct": False,
    "conduct_accused": None,
    "duplicate_of_id": None,
    # the §13 level instants: stored by the scan's first round (sla_next_at = now below)
    "sla_blue_at": None,
    "sla_yellow_at": None,
    "sla_red_at": None,
    "sla_overdue_at": None,
    "sla_bounds_step": None,
}
_SUBORDER_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "accepted_at": None,
    "replied_at": None,
    "reply": None,
    "return_reason": None,
    "extension_until": None,
    "extension_reason": None,
    "handoff_status": None,
    "external_ref": None,
    "role": None,
    "return_handled_at": None,
    "return_resolution": None,
    "return_note": None,
    "released_at": None,
    "release_reason": None,
    "sla_blue_at": None,
    "sla_yellow_at": None,
    "sla_red_at": None,
    "sla_overdue_at": None,
    "sla_bounds_step": None,
}
_MOVED_TO_DISPATCHED: dict[str, Any] = {
    "from": TicketStatus.pending_dispatch.value,
    "to": TicketStatus.dispatched.value,
}
_CALL_LOCKS = text(
    "SELECT pg_advisory_xact_lock(hashtext(k)) FROM unnest(CAST(:keys AS text[])) AS k"
)


@dataclass
class _Row:
    """One draft on its way to rows: the ticket's values, its events, its auto-dispatch."""

    draft: Draft
    values: dict[str, Any]
    created: dict[str, Any]
    codes: list[str]
    decision: Decision
    ticket: Ticket | None = None


def write_drafts(
    session: Session, settings: Settings, drafts: list[Draft]
) -> list[Ticket | TicketingError]:
    """The ticket of each draft, in order (an existing one for a repeated call_id), or the
    InvalidInput that refused it. Writes in the caller's transaction."""
    results: list[Ticket | TicketingError | None] = [None] * len(drafts)
    conn = session.connection()
    dialect = conn.dialect.name

    # ---- reads and per-draft refusals, before anything is written
    unknown = _unknown_departments(session, {c for d in drafts for c in d.departments})
    by_call = _existing_by_call_id(session, conn, dialect, drafts)
    by_key = _existing_by_idempotency_key(session, conn, dialect, drafts)
    first_of_call: dict[str, int] = {}
    first_of_key: dict[str, int] = {}
    todo: list[int] = []
    for i, d in enumerate(drafts):
        missing = [c for c in d.departments if c in unknown]
        key = d.idempotency_key
        if key is not None and key in by_key:
            results[i] = _same_matter(d, by_key[key])
        elif key is not None and key in first_of_key:
            continue  # a double click inside one batch: the first's ticket, filled in below
        elif missing:
            results[i] = InvalidInput(
                f"未知或已停用的部门：{'、'.join(missing)}", field="departments", missing=missing
            )
        elif d.dedupe_id is not None and d.dedupe_id in by_call:
            results[i] = by_call[d.dedupe_id]
        elif d.dedupe_id is not None and d.dedupe_id in first_of_call:
            continue  # the same call twice in one batch: one ticket, filled in below
        else:
            if d.dedupe_id is not None:
                first_of_call[d.dedupe_id] = i
            todo.append(i)
        if key is not None and results[i] is None and key not in first_of_key:
            first_of_key[key] = i
    if not todo:
        return _fill_repeats(drafts, results, first_of_call, first_of_key)

    # ---- everything below writes
    now = utcnow()
    callers = _upsert_callers(conn, dialect, [drafts[i] for i in todo])
    fast = [i for i in todo if not drafts[i].departments]
    fast_set = set(fast)
    numbers = iter(next_numbers(session, settings, now, len(fast))) if fast else iter(())
    rows: dict[int, _Row] = {}
    deadlines: dict[tuple[str, str], tuple[datetime, str]] = {}  # one `now` for the whole batch
    values_of = {
        i: _ticket_values(conn, dialect, settings, drafts[i], now, callers, deadlines) for i in todo
    }
    dups = _link_duplicates(conn, settings, todo, values_of, now)
    for i in todo:
        d = drafts[i]
        values = values_of[i]
        if i not in fast_set:
            results[i] = _write_with_departments(
                session, settings, d, values, nested=len(drafts) > 1
            )
            continue
        row = _auto_decision(session, settings, d, values)
        values["number"] = row.created["number"] = next(numbers)
        rows[i] = row
    if rows:
        _insert_fast(session, conn, settings, list(rows.values()))
        for i, row in rows.items():
            results[i] = row.ticket
    _record_duplicates(session, drafts, results, dups)
    for i in todo:
        ticket = results[i]
        if drafts[i].send_notice and isinstance(ticket, Ticket):
            create_acceptance_notice(session, settings, ticket)
    return _fill_repeats(drafts, results, first_of_call, first_of_key)


def _fill_repeats(
    drafts: list[Draft],
    results: list[Ticket | TicketingError | None],
    first_of_call: dict[str, int],
    first_of_key: dict[str, int],
) -> list[Ticket | TicketingError]:
    for i, d in enumerate(drafts):
        if results[i] is not None:
            continue
        key = d.idempotency_key
        if key is not None and first_of_key.get(key, i) != i:
            first = results[first_of_key[key]]
            results[i] = _same_matter(d, first) if isinstance(first, Ticket) else first
        elif d.dedupe_id is not None:
            results[i] = results[first_of_call[d.dedupe_id]]
    return results  # type: ignore[return-value]


def _same_matter(d: Draft, ticket: Ticket) -> Ticket | TicketingError:
    """The ticket a repeated Idempotency-Key names, if the repeat is the same matter; a key
    reused for something else is refused rather than silently answered with another ticket."""
    if ticket.channel == d.channel and ticket.content == d.content:
        return ticket
    return Conflict(
        "此 Idempotency-Key 已用于另一份诉求；新的诉求请使用新的键",
        code="idempotency_key_reused",
        ticket_number=ticket.number,
    )


def _existing_by_idempotency_key(
    session: Session, conn: Connection, dialect: str, drafts: list[Draft]
) -> dict[str, Ticket]:
    """Tickets already filed under any of the drafts' idempotency keys."""
    keys = sorted({d.idempotency_key for d in drafts if d.idempotency_key is not None})
    if not keys:
        return {}
    if dialect == "postgresql":
        # a double click's two requests in two batches: the second waits for the first's COMMIT
        # (taken after the call-id locks, each set sorted: no two batches wait in a cycle)
        conn.execute(_CALL_LOCKS, {"keys": [f"ticket-idem:{k}" for k in keys]})
    found = session.exec(select(Ticket).where(Ticket.idempotency_key.in_(keys)))  # type: ignore[union-attr]
    return {t.idempotency_key: t for t in found if t.idempotency_key is not None}


# ---------------------------------------------------------------- reads


def _unknown_departments(session: Session, wanted: set[str]) -> set[str]:
    if not wanted:
        return set()
    found = set(
        session.exec(
            select(Department.code).where(
                col(Department.code).in_(sorted(wanted)), Department.active
            )
        )
    )
    return wanted - found


@lru_cache(maxsize=4)
def _call_id_query(dialect: str) -> TextClause:
    """Tickets filed under any of the call ids, through ix_ticket_call_id. The channel is checked
    by the caller: as a SQL term, a planner without fresh statistics (SQLite has none until an
    ANALYZE; PostgreSQL none before autovacuum's first) reads the channel index too, i.e. every
    hotline ticket. And SQLite's statistics count the NULLs of the many tickets without a call
    id as one value, which makes the index look useless: INDEXED BY holds the plan (SQLite's own
    advice for a time-sensitive query), and fails loudly should the index ever go missing."""
    if dialect == "postgresql":
        expr, source = "(channel_data ->> 'call_id')", "ticket"
    else:
        expr, source = (
            "json_extract(channel_data, '$.call_id')",
            "ticket INDEXED BY ix_ticket_call_id",
        )
    return text(
        f"SELECT id, {expr} AS cid, channel FROM {source} WHERE {expr} IN :cids ORDER BY id"
    ).bindparams(bindparam("cids", expanding=True))


def _existing_by_call_id(
    session: Session, conn: Connection, dialect: str, drafts: list[Draft]
) -> dict[str, Ticket]:
    """The first ticket already filed for each of the drafts' call ids (a retried job, a hotline
    call that ended in voicemail)."""
    keys = sorted({d.dedupe_id for d in drafts if d.dedupe_id is not None})
    if not keys:
        return {}
    if dialect == "postgresql":
        # serialise intakes of the same call (a retried job racing the original); one sorted
        # statement, so two batches never wait on each other in a cycle
        conn.execute(_CALL_LOCKS, {"keys": [f"ticket-call:{k}" for k in keys]})
    # (SQLite: BEGIN IMMEDIATE already serialises writers)
    first: dict[str, int] = {}
    for tid, cid, channel in conn.execute(_call_id_query(dialect), {"cids": keys}):
        if channel in DEDUPE_CHANNELS:
            first.setdefault(str(cid), tid)
    if not first:
        return {}
    tickets = {
        t.id: t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(first.values())))
    }
    return {cid: tickets[tid] for cid, tid in first.items()}


def existing_call_ticket(session: Session, draft: Draft) -> Ticket | None:
    """The ticket already filed for the draft's call, if any (one ticket per call): the seam for
    intakes outside write_drafts, e.g. 直接答复 (ticketing.direct_answer)."""
    if draft.dedupe_id is None:
        return None
    conn = session.connection()
    found = _existing_by_call_id(session, conn, conn.dialect.name, [draft])
    return found.get(draft.dedupe_id)


def insert_ticket(
    session: Session,
    settings: Settings,
    draft: Draft,
    *,
    number: str,
    now: datetime,
    committed_deadline: bool = True,
) -> Ticket:
    """One ticket from a prepared draft, its caller and enterprise upserted and its "created"
    event recorded, not dispatched: the seam for intakes outside write_drafts (直接答复 files
    with committed_deadline=False: no deadline, no SLA basis)."""
    conn = session.connection()
    dialect = conn.dialect.name
    callers = _upsert_callers(conn, dialect, [draft])
    values = _ticket_values(conn, dialect, settings, draft, now, callers, {})
    values["number"] = number
    if not committed_deadline:
        values.update(deadline_at=None, sla_basis=None)
    values["id"] = conn.execute(_TICKET_INSERT, values).scalar_one()
    ticket = _persistent(session, Ticket, values)
    events.record(session, ticket.id, draft.actor, "created", **_created_event(draft, values))
    return ticket


# ---------------------------------------------------------------- upserts


def _insert(dialect: str, table: Any) -> Any:
    """The dialect's INSERT (both have on_conflict_do_update, with slightly different types)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


@lru_cache(maxsize=4)
def _caller_upsert(dialect: str) -> Any:
    """Built once per dialect with bind parameters (rebuilding it per intake cost ~0.4 ms)."""
    table = Caller.__table__  # type: ignore[attr-defined]
    stmt = _insert(dialect, table).values(
        phone=bindparam("phone"), name=bindparam("name"), created_at=bindparam("created_at")
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["phone"],
        set_={"name": func.coalesce(stmt.excluded.name, table.c.name)},
    )
    return stmt


_CALLER_TABLE = Caller.__table__  # type: ignore[attr-defined]
_CALLER_IDS = select(_CALLER_TABLE.c.phone, _CALLER_TABLE.c.id).where(
    _CALLER_TABLE.c.phone.in_(bindparam("phones", expanding=True))
)


def _upsert_callers(conn: Connection, dialect: str, drafts: list[Draft]) -> dict[str, int]:
    """Insert or (re)name every caller of the batch in one statement; phone → caller id.

    A phone twice in the batch is one row (an upsert may not touch a row twice), named as the
    drafts one after another would leave it: the last name given."""
    names: dict[str, str | None] = {}
    for d in drafts:
        if d.phone:
            names[d.phone] = d.submitter_name or names.get(d.phone)
    if not names:
        return {}
    now = utcnow()
    params = [{"phone": p, "name": n, "created_at": now} for p, n in names.items()]
    conn.execute(_caller_upsert(dialect), params)
    return dict(conn.execute(_CALLER_IDS, {"phones": list(names)}).all())


def _upsert_enterprise(conn: Connection, dialect: str, uscc: str, name: str | None) -> int:
    """One statement: insert, or fill/update the name when one is given; returns the id."""
    table = Enterprise.__table__  # type: ignore[attr-defined]
    stmt = _insert(dialect, table).values(uscc=uscc, name=name or "", created_at=utcnow())
    stmt = stmt.on_conflict_do_update(
        index_elements=["uscc"],
        set_={"name": case((stmt.excluded.name != "", stmt.excluded.name), else_=table.c.name)},
    )
    return conn.execute(stmt.returning(table.c.id)).scalar_one()


# ---------------------------------------------------------------- tickets


def _ticket_values(
    conn: Connection,
    dialect: str,
    settings: Settings,
    d: Draft,
    now: datetime,
    callers: dict[str, int],
    deadlines: dict[tuple[str, str], tuple[datetime, str]],
) -> dict[str, Any]:
    key = (d.category, d.urgency)
    if key not in deadlines:
        deadlines[key] = deadline_for(settings, d.category, d.urgency, now)
    deadline, basis = deadlines[key]
    enterprise_id = _upsert_enterprise(conn, dialect, d.uscc, d.enterprise_name) if d.uscc else None
    return {
        **_TICKET_DEFAULTS,
        "number": None,
        "channel": d.channel,
        "title": d.title,
        "content": d.content,
        "category": d.category,
        "urgency": d.urgency,
        "status": TicketStatus.pending_dispatch.value,
        "suggested_department": getattr(d.prediction, "department", None),
        "classifier_confidence": getattr(d.prediction, "confidence", None),
        "enterprise_id": enterprise_id,
        "caller_id": callers.get(d.phone) if d.phone else None,
        "submitter_name": d.submitter_name,
        "submitter_phone": d.phone,
        "channel_data": d.channel_data,
        "sla_basis": basis,
        "deadline_at": deadline,
        "created_by": d.actor,
        "created_at": now,
        "updated_at": now,
        "idempotency_key": d.idempotency_key,
        "simulated": d.simulated or settings.simulation,
        "sla_next_at": now,  # due for the §13 scan's next round (ticketing.sla_clocks)
    }


def _link_duplicates(
    conn: Connection,
    settings: Settings,
    todo: list[int],
    values_of: dict[int, dict[str, Any]],
    now: datetime,
) -> dict[int, tuple[duplicates.Match | None, int | None, float]]:
    """重复件: what each new ticket repeats — an earlier ticket in the database (one query for
    the batch; its chain's first ticket goes into the row) or an earlier draft of this batch
    (linked once both are written: the batch writes what one intake after another would).
    Draft index → (database match, earlier draft's index, similarity)."""
    cands = [
        duplicates.Candidate(
            values_of[i]["submitter_phone"],
            values_of[i]["enterprise_id"],
            values_of[i]["category"],
            duplicates.subject(values_of[i]["title"], values_of[i]["content"]),
        )
        for i in todo
    ]
    found = duplicates.find(conn, settings, cands, now)
    out: dict[int, tuple[duplicates.Match | None, int | None, float]] = {}
    for k, (i, match) in enumerate(zip(todo, found, strict=True)):
        if match is not None:
            values_of[i]["duplicate_of_id"] = match.ticket_id
            out[i] = (match, None, match.score)
            continue
        c = cands[k]
        if not (c.phone or c.enterprise_id):
            continue
        best: tuple[int, float] | None = None
        for j_pos in range(k):  # an earlier draft of the same submitter in this batch
            e = cands[j_pos]
            same = (c.phone and e.phone == c.phone) or (
                c.enterprise_id is not None and e.enterprise_id == c.enterprise_id
            )
            if not same or e.category != c.category:
                continue
            score = round(duplicates.score(c.text, e.text), 3)
            if score >= settings.duplicate_similarity and (best is None or score > best[1]):
                best = (todo[j_pos], score)
        if best is not None:
            out[i] = (None, best[0], best[1])
    return out


def _record_duplicates(
    session: Session,
    drafts: list[Draft],
    results: list[Ticket | TicketingError | None],
    dups: dict[int, tuple[duplicates.Match | None, int | None, float]],
) -> None:
    """Link the batch's repeats and record a "duplicate_linked" event on each (in draft order,
    so a chain inside the batch points at its first ticket)."""
    rows: list[dict[str, Any]] = []
    for i in sorted(dups):
        ticket = results[i]
        match, j, score = dups[i]
        if not isinstance(ticket, Ticket):
            continue
        if match is not None:
            earlier_id, earlier_number = match.earlier_id, match.earlier_number
        else:
            earlier = results[j] if j is not None else None
            if not isinstance(earlier, Ticket) or earlier.id is None or earlier.id == ticket.id:
                continue
            earlier_id, earlier_number = earlier.id, earlier.number
            ticket.duplicate_of_id = earlier.duplicate_of_id or earlier.id
            session.add(ticket)
        rows.append(
            events.entry(
                ticket.id,
                drafts[i].actor,
                "duplicate_linked",
                duplicate_of=earlier_number,
                duplicate_of_id=earlier_id,
                similarity=score,
            )
        )
    events.record_all(session, rows)


def _created_event(d: Draft, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": values["channel"],
        "number": values["number"],
        "category": d.category,
        "urgency": d.urgency,
        "classified": d.prediction is not None,
        "confidence": values["classifier_confidence"],
        "suggested_department": values["suggested_department"],
        "deadline": values["deadline_at"],
    }


def _write_with_departments(
    session: Session,
    settings: Settings,
    d: Draft,
    values: dict[str, Any],
    *,
    nested: bool,
) -> Ticket | TicketingError:
    """Named departments (a dispatcher at intake): the ORM dispatch path, as any later dispatch."""

    def write() -> Ticket:
        values["number"] = next_number(session, settings, values["created_at"])
        conn = session.connection()
        values["id"] = conn.execute(_TICKET_INSERT, values).scalar_one()
        ticket = _persistent(session, Ticket, values)
        events.record(session, ticket.id, d.actor, "created", **_created_event(d, values))
        dispatch(session, settings, ticket, d.departments, actor=d.actor)
        return ticket

    if not nested:
        return write()
    try:
        with session.begin_nested():
            return write()
    except InvalidInput as e:
        return e


def _auto_decision(session: Session, settings: Settings, d: Draft, values: dict[str, Any]) -> _Row:
    """Where auto-dispatch sends this ticket, and why not when it cannot (dispatch_rule.decide)."""
    decision = decide(
        settings,
        values["title"],
        values["content"],
        d.prediction,
        partial(cached_departments, session),
        partial(all_cached_departments, session),
    )
    codes = clean_codes(decision.codes) if decision.codes else []
    values["suggested_department"] = decision.suggested
    values["classifier_confidence"] = decision.confidence
    values["updated_at"] = utcnow()
    if decision.conduct:
        values["conduct"] = True
        values["conduct_accused"] = ",".join(decision.accused) or None
    if codes:
        values["status"] = TicketStatus.dispatched.value
        values["dispatch_mode"] = "auto"
    else:
        values["dispatch_mode"] = "manual"
    return _Row(d, values, _created_event(d, values), codes, decision)


def _insert_fast(session: Session, conn: Connection, settings: Settings, rows: list[_Row]) -> None:
    """The batch's auto-dispatched tickets, their sub-orders and events: three statements."""

    conn.execute(_TICKETS_INSERT, [r.values for r in rows])
    numbers = [r.values["number"] for r in rows]
    by_number = dict(conn.execute(_TICKET_IDS, {"numbers": numbers}).all())
    ids = [by_number[n] for n in numbers]
    subs: list[dict[str, Any]] = []
    owners: list[_Row] = []
    targets: dict[tuple[str, str], bool] = {}
    for r, ticket_id in zip(rows, ids, strict=True):
        r.values["id"] = ticket_id
        r.ticket = _persistent(session, Ticket, r.values)
        if not r.codes:
            continue
        found = cached_departments(session, r.codes)
        dispatched_at = utcnow()
        for code in r.codes:
            key = (r.values["category"], code)
            if key not in targets:
                target = handoff.target_for(
                    session, settings, r.ticket, found[code], lookup=cached_departments
                )
                targets[key] = target is not None
            subs.append(
                {
                    **_SUBORDER_DEFAULTS,
                    "ticket_id": ticket_id,
                    "department_code": code,
                    "round": r.values["round"],
                    "status": SubOrderStatus.dispatched.value,
                    "deadline_at": r.values["deadline_at"],
                    "dispatched_by": r.draft.actor,
                    "dispatched_at": dispatched_at,
                    "handoff_status": "queued" if targets[key] else None,
                }
            )
            owners.append(r)
    sub_ids: list[int] = []
    if subs:
        conn.execute(_SUBORDERS_INSERT, subs)
        tickets = sorted({sub["ticket_id"] for sub in subs})
        found_ids = {(t, c): i for t, c, i in conn.execute(_SUBORDER_IDS, {"tickets": tickets})}
        sub_ids = [found_ids[(sub["ticket_id"], sub["department_code"])] for sub in subs]
    by_ticket: dict[int, list[tuple[int, str, bool]]] = {}
    queued: list[int] = []
    for sub, sub_id, r in zip(subs, sub_ids, owners, strict=True):
        sub["id"] = sub_id
        is_queued = sub["handoff_status"] == "queued"
        by_ticket.setdefault(r.values["id"], []).append((sub_id, sub["department_code"], is_queued))
        if is_queued:
            queued.append(sub_id)
    if queued:
        handoff.enqueue_after_commit(session, settings, queued)
    log_rows: list[dict[str, Any]] = []
    for r in rows:
        log_rows.extend(_events(r, by_ticket.get(r.values["id"], [])))
    events.record_all(session, log_rows)


def _events(r: _Row, subs: list[tuple[int, str, bool]]) -> list[dict[str, Any]]:
    ticket_id, actor = r.values["id"], r.draft.actor
    out = [events.entry(ticket_id, actor, "created", **r.created)]
    if not r.codes:
        out.append(
            events.entry(
                ticket_id,
                actor,
                "manual_dispatch_required",
                **r.decision.manual_event(),
            )
        )
        return out
    out.append(
        events.entry(
            ticket_id,
            actor,
            "dispatched",
            **_MOVED_TO_DISPATCHED,
            mode="auto",
            departments=r.codes,
            round=r.values["round"],
            **r.decision.basis,
        )
    )
    out.extend(
        events.entry(
            ticket_id,
            actor,
            "suborder_dispatched",
            suborder_id=sub_id,
            department=code,
            deadline=r.values["deadline_at"],
            mode="auto",
            instructions=None,
            handoff=queued,
            role=None,
            beyond_ticket_deadline=False,
        )
        for sub_id, code, queued in subs
    )
    return out


def _persistent(session: Session, model: type[_M], values: dict[str, Any]) -> _M:
    """The ORM instance of a row this transaction just INSERTed with Core, attached as if loaded.

    Cheaper than constructing + flushing the model (validation, unit of work) or re-selecting it;
    later ORM changes to it are flushed as UPDATEs as usual.
    """
    obj = class_mapper(model).class_manager.new_instance()  # class_mapper: configured
    obj.__dict__.update(values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj
