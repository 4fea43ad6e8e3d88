"""The scheduled §13 scan, incremental: it reads only the rows whose level can have changed.

Every open sub-order and ticket carries `sla_next_at` (indexed): the next instant at which its
level can change, or "now" when written by a path that did not evaluate it (intake's bulk insert,
a migration). A round reads the rows with sla_next_at <= now, in batches, evaluates each with
ticketing.sla_clocks (the same code as the state-change hook), and writes the new level and the
next instant; a row whose step is over gets NULL and is never read again. So a round costs what
is due, not what is open: 1,000,000 open matters with nothing due cost one index probe.

Two scans at once (two schedulers, or a slow round overlapping the next) never do the same work
twice: PostgreSQL hands each due row to one of them (FOR UPDATE SKIP LOCKED), SQLite runs one
writer at a time (BEGIN IMMEDIATE, config.database), and the escalations a level sets off are
unique by their dedup_key anyway. `full_scan` re-evaluates every open row set-based: one SQL
pass compares each row's stored level boundaries with `now` and returns only the rows whose level
rises (and those without boundaries, made due for the round); `rebound=True` after a change of
the rules in sla.yaml or of the holiday calendar recomputes the boundaries. Writes go in bulk
(config.bulk), events, escalations and their SMS in one batch per chunk.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlmodel import Session

from config.bulk import update_rows
from config.settings import Settings
from ticketing.escalation import send_held
from ticketing.models import SubOrder, Ticket, utcnow
from ticketing.sla_clocks import (
    ACCEPT_STEP,
    BOUND_COLUMNS,
    FINISH_STEP,
    OPEN_TICKET,
    Facts,
    Outcome,
    Rule,
    _returned_red,
    bound_values,
    judge,
    record_raised,
    rules,
    stored_bounds,
    suborder_facts,
    ticket_facts,
)
from ticketing.sla_levels import SEVERITY
from ticketing.worktime import WorkCalendar


@dataclass
class ScanResult:
    suborders: int = 0
    tickets: int = 0
    raised: Counter = field(default_factory=Counter)  # level -> clocks raised to it
    sms_released: int = 0
    followup: dict[str, int] = field(default_factory=dict)

    @property
    def checked(self) -> int:
        return self.suborders + self.tickets

    @property
    def changed(self) -> Counter:
        return self.raised

    def as_dict(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "suborders": self.suborders,
            "tickets": self.tickets,
            "changed": dict(self.raised),
            "sms_released": self.sms_released,
            "followup": dict(self.followup),
        }


_SO = SubOrder.__table__  # type: ignore[attr-defined]
_T = Ticket.__table__  # type: ignore[attr-defined]


class _Due(NamedTuple):
    """A due (or risen) sub-order as the scans read it, with its ticket's urgency, category and
    level: a plain tuple, so the per-row work reads its fields without SQLAlchemy Row lookups
    (about a microsecond each, some twenty per row)."""

    id: int
    ticket_id: int
    round: int
    status: str
    department_code: str
    dispatched_at: datetime
    accepted_at: datetime | None
    deadline_at: datetime | None
    accept_due_at: datetime | None
    warning: str
    warning_step: str | None
    sla_blue_at: datetime | None
    sla_yellow_at: datetime | None
    sla_red_at: datetime | None
    sla_overdue_at: datetime | None
    sla_bounds_step: str | None
    urgency: str
    category: str
    ticket_warning: str


class _Clock(NamedTuple):
    """A ticket as its clock reads it (ticket_facts, stored_bounds): not its text."""

    id: int
    round: int
    status: str
    urgency: str
    category: str
    created_at: datetime
    updated_at: datetime | None
    deadline_at: datetime | None
    warning: str
    sla_blue_at: datetime | None
    sla_yellow_at: datetime | None
    sla_red_at: datetime | None
    sla_overdue_at: datetime | None
    sla_bounds_step: str | None


class _Sub(NamedTuple):
    """A sub-order as its ticket's clock reads it (ticket_facts)."""

    ticket_id: int
    round: int
    status: str
    department_code: str
    warning: str | None


_SO_COLS = tuple(_SO.c[f] for f in _Due._fields[:-3])
_DUE_COLS = (*_SO_COLS, _T.c.urgency, _T.c.category, _T.c.warning.label("ticket_warning"))
_T_COLS = tuple(_T.c[f] for f in _Clock._fields)


def _rise(
    settings: Settings,
    r: _Due,
    now: datetime,
    cal: WorkCalendar | None = None,
    rule_set: tuple[Rule, ...] | None = None,
) -> tuple[Facts, Outcome]:
    """A due sub-order's clock at `now`, the one per-row computation of the round and the full
    scan: a comparison with its stored boundaries, or (none stored for its step) computed."""
    facts = suborder_facts(settings, r, r.urgency, r.category, now)
    return facts, judge(settings, facts, now, moved=False, cal=cal, rule_set=rule_set)


def _row_values(table_row_id: int, out: Outcome) -> dict[str, Any]:
    """The columns a round writes for one evaluated row (its level, next instant, boundaries)."""
    return {
        "id": table_row_id,
        "warning": out.level,
        "sla_next_at": out.next_at,
        **bound_values(out),
    }


def scan_round(
    session: Session,
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = 1000,
    max_rows: int | None = None,
    extra_tickets: set[int] | None = None,
) -> ScanResult:
    """One incremental round: every due sub-order, then every due ticket, then held SMS. Plain
    rows and multi-row updates (no ORM objects): a round costs what is due."""
    now = now or utcnow()
    cal = WorkCalendar.shared(settings)
    result = ScanResult()
    rule_set = rules(settings)
    tickets_due: set[int] = set(extra_tickets or ())
    while max_rows is None or result.suborders < max_rows:
        rows = list(
            map(
                _Due._make,
                session.execute(
                    select(*_DUE_COLS)
                    .join(_T, _T.c.id == _SO.c.ticket_id)
                    .where(_SO.c.sla_next_at <= now)
                    .order_by(_SO.c.sla_next_at, _SO.c.id)
                    .limit(batch)
                    .with_for_update(of=_SO, skip_locked=True)
                ),
            )
        )
        if not rows:
            break
        updates: list[dict[str, Any]] = []
        # rows judged on their stored boundaries: only the level and the next instant change
        level_only: list[dict[str, Any]] = []
        raised: list[tuple[Facts, tuple[str, str | None], Outcome]] = []
        for r in rows:
            facts, out = _rise(settings, r, now, cal, rule_set)
            accept_due = r.accept_due_at
            if facts.step == "accept" and accept_due is None:
                accept_due = facts.due
            if (
                facts.bounds is not None
                and r.warning_step == out.step
                and accept_due == r.accept_due_at
            ):
                # stored_bounds matched the row's step and due: boundaries, step and accept
                # deadline as stored (judge returned them unchanged)
                level_only.append({"id": r.id, "warning": out.level, "sla_next_at": out.next_at})
            else:
                updates.append(
                    {
                        **_row_values(r.id, out),
                        "warning_step": out.step,
                        "accept_due_at": accept_due,
                    }
                )
            if out.raised:
                result.raised[out.level] += 1
                raised.append((facts, (r.warning, r.warning_step), out))
            if (out.raised and SEVERITY[out.level] > SEVERITY.get(r.ticket_warning, 0)) or (
                facts.stored_step != out.step  # first look, or moved behind the lifecycle
            ):
                tickets_due.add(r.ticket_id)  # its ticket's facts changed too
        update_rows(session, _SO, "id", updates)
        update_rows(session, _SO, "id", level_only)
        record_raised(session, settings, raised, now)
        result.suborders += len(rows)
        if len(rows) < batch:
            break
    result.tickets += _tickets(session, settings, now, cal, batch, tickets_due, result)
    result.sms_released = send_held(session, settings, now)
    return result


def _tickets(
    session: Session,
    settings: Settings,
    now: datetime,
    cal: WorkCalendar,
    batch: int,
    extra: set[int],
    result: ScanResult,
) -> int:
    seen = 0
    extra_ids = sorted(extra)
    returned_red = _returned_red(settings)
    rule_set = rules(settings)
    while True:
        if extra_ids:  # tickets whose sub-orders changed, first (in chunks)
            chunk, extra_ids = extra_ids[:batch], extra_ids[batch:]
            cond = _T.c.id.in_(chunk)
        else:
            cond = _T.c.sla_next_at <= now
        tickets = list(
            map(
                _Clock._make,
                session.execute(
                    select(*_T_COLS)
                    .where(cond)
                    .order_by(_T.c.sla_next_at, _T.c.id)  # the index's order: a probe, not a scan
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                ),
            )
        )
        if not tickets:
            if extra_ids:
                continue
            return seen
        subs = _current_subs(session, [t.id for t in tickets if t.status in OPEN_TICKET])
        updates: list[dict[str, Any]] = []
        raised: list[tuple[Facts, tuple[str, str | None], Outcome]] = []
        for t in tickets:
            mine = [x for x in subs.get(t.id, []) if x.round == t.round]
            facts, worst = ticket_facts(t, mine, returned_is_beyond_power=returned_red)
            out = judge(settings, facts, now, moved=False, cal=cal, floor=worst, rule_set=rule_set)
            updates.append(_row_values(t.id, out))
            if out.raised:
                result.raised[out.level] += 1
                raised.append((facts, (t.warning, "ticket"), out))
        if updates:
            update_rows(session, _T, "id", updates)
        record_raised(session, settings, raised, now)
        seen += len(tickets)
        if len(tickets) < batch and not extra_ids:
            return seen


# ---------------------------------------------------------------- the set-based full scan

_LEVEL_SEVERITY = ("overdue", "red", "yellow", "blue")  # highest first


def _severity_of(column: Any) -> Any:
    """A stored level name as its severity (sla_levels.SEVERITY), in SQL."""
    return case(*((column == lvl, SEVERITY[lvl]) for lvl in _LEVEL_SEVERITY), else_=0)


def _level_now(table: Any, now: Any) -> Any:
    """The severity the stored boundaries give at `now`: sla_levels.level_from, in SQL (a NULL
    boundary never holds)."""
    return case(
        *((table.c[BOUND_COLUMNS[lvl]] <= now, SEVERITY[lvl]) for lvl in _LEVEL_SEVERITY),
        else_=0,
    )


_STEP_OF_STATUS = {"accept": sorted(ACCEPT_STEP), "finish": sorted(FINISH_STEP)}


def full_scan(
    session: Session,
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = 5000,
    rebound: bool = False,
) -> ScanResult:
    """Re-evaluate every open sub-order and ticket, set-based: each row's level at `now` is a
    comparison of its stored boundaries (computed once when its step started), so 1,000,000 open
    rows are one pass in SQL; only the rows whose level rises are read, then recorded and
    escalated as a round does (events, 催办/督办/专办, their SMS). Rows without boundaries for
    their step (inserted behind the clocks) are made due and evaluated by the round that follows.
    rebound=True: the rules in sla.yaml or the holiday calendar changed, so every open row's
    boundaries are recomputed (made due: the rounds compute them in Python, in batches)."""
    now = now or utcnow()
    result = ScanResult()
    so_open = _SO.c.status.in_([*ACCEPT_STEP, *FINISH_STEP])
    t_open = _T.c.status.in_(list(OPEN_TICKET))
    # the stored boundaries hold for the row's step and its due instant (sla_clocks.stored_bounds)
    so_valid = or_(
        *(
            and_(
                _SO.c.status.in_(statuses),
                _SO.c.sla_bounds_step == step,
                _SO.c.sla_overdue_at.is_not_distinct_from(
                    _SO.c.accept_due_at if step == "accept" else _SO.c.deadline_at
                ),
            )
            for step, statuses in _STEP_OF_STATUS.items()
        )
    ) & (_SO.c.warning_step == _SO.c.sla_bounds_step)
    t_valid = (_T.c.sla_bounds_step == "ticket") & _T.c.sla_overdue_at.is_not_distinct_from(
        _T.c.deadline_at
    )
    if rebound:
        session.execute(update(_SO).where(so_open).values(sla_bounds_step=None, sla_next_at=now))
        session.execute(update(_T).where(t_open).values(sla_bounds_step=None, sla_next_at=now))
    now_p = bindparam("now", now, type_=_SO.c.sla_next_at.type)
    tickets_due: set[int] = set()
    # one pass over the open sub-orders: back come those whose level rises, and those without
    # boundaries for their step (made due: the round below computes them)
    lvl = _level_now(_SO, now_p)
    found = session.execute(
        select(*_SO_COLS, case((so_valid, 1), else_=0).label("valid"))
        .where(
            so_open,
            or_(
                and_(so_valid, lvl > _severity_of(_SO.c.warning)),
                _SO.c.sla_bounds_step.is_(None),
                ~so_valid,
            ),
        )
        .order_by(_SO.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    risen = [r for r in found if r.valid]
    _make_due(session, _SO, [r.id for r in found if not r.valid], now)
    for i in range(0, len(risen), batch):
        chunk = risen[i : i + batch]
        urgency = _ticket_facts_of(session, [r.ticket_id for r in chunk])
        raised: list[tuple[Facts, tuple[str, str | None], Outcome]] = []
        updates: list[dict[str, Any]] = []
        for row in chunk:
            r = _Due._make((*row[:-1], *urgency.get(row.ticket_id, ("general", "")), "none"))
            facts, out = _rise(settings, r, now)  # from the stored boundaries
            level = out.level
            updates.append({"id": r.id, "warning": level, "sla_next_at": out.next_at})
            raised.append((facts, (r.warning, r.warning_step), out))
            result.raised[level] += 1
            tickets_due.add(r.ticket_id)
        update_rows(session, _SO, "id", updates)
        record_raised(session, settings, raised, now)
    result.suborders += len(risen)
    # tickets: their own clocks the same way (their floor, the worst sub-order, by the round)
    tlvl = _level_now(_T, now_p)
    found_t = session.execute(
        select(*_T_COLS, case((t_valid, 1), else_=0).label("valid"))
        .where(
            t_open,
            or_(
                and_(t_valid, tlvl > _severity_of(_T.c.warning)),
                _T.c.sla_bounds_step.is_(None),
                ~t_valid,
            ),
        )
        .order_by(_T.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    trisen = [t for t in found_t if t.valid]
    _make_due(session, _T, [t.id for t in found_t if not t.valid], now)
    returned_red = _returned_red(settings)
    for i in range(0, len(trisen), batch):
        tchunk = [_Clock._make(t[:-1]) for t in trisen[i : i + batch]]
        subs = _current_subs(session, [t.id for t in tchunk])
        raised = []
        updates = []
        for t in tchunk:
            facts, _worst = ticket_facts(
                t,
                [x for x in subs.get(t.id, []) if x.round == t.round],
                returned_is_beyond_power=returned_red,
            )
            facts.bounds = stored_bounds(t, "ticket", t.deadline_at)
            out = judge(settings, facts, now, moved=False)  # from the stored boundaries
            level = out.level
            updates.append({"id": t.id, "warning": level, "sla_next_at": out.next_at})
            raised.append((facts, (t.warning, "ticket"), out))
            result.raised[level] += 1
            tickets_due.discard(t.id)
        update_rows(session, _T, "id", updates)
        record_raised(session, settings, raised, now)
    result.tickets += len(trisen)
    # then a round: the rows made due above, and the tickets whose sub-orders rose (the floor)
    more = scan_round(session, settings, now=now, batch=batch, extra_tickets=tickets_due)
    result.suborders += more.suborders
    result.tickets += more.tickets
    result.raised.update(more.raised)
    result.sms_released = more.sms_released
    return result


def _make_due(session: Session, table: Any, ids: list[int], now: datetime) -> None:
    """These rows are evaluated by the next round (now)."""
    for i in range(0, len(ids), 1000):
        session.execute(
            update(table).where(table.c.id.in_(ids[i : i + 1000])).values(sla_next_at=now)
        )


def _ticket_facts_of(session: Session, ids: list[int]) -> dict[int, tuple[str, str]]:
    return {
        r.id: (r.urgency, r.category)
        for r in session.execute(
            select(_T.c.id, _T.c.urgency, _T.c.category).where(_T.c.id.in_(set(ids)))
        ).all()
    }


def _current_subs(session: Session, ticket_ids: list[int]) -> dict[int, list[_Sub]]:
    subs: dict[int, list[_Sub]] = {}
    if ticket_ids:
        for srow in map(
            _Sub._make,
            session.execute(
                select(*(_SO.c[f] for f in _Sub._fields)).where(_SO.c.ticket_id.in_(ticket_ids))
            ),
        ):
            subs.setdefault(srow.ticket_id, []).append(srow)
    return subs
