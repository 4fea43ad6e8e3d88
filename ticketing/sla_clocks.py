"""The clocks of §13 kept on the rows: a sub-order's accept (签收) and finish (办结) steps, the
ticket's committed deadline; each row's level and the next instant its level can change.

One evaluation for both paths: `touch` / `start_clocks` (called through ticketing.hooks by the
lifecycle on every state change and by the dispatch for new sub-orders, on the objects in hand)
and the scheduled scans (ticketing.sla_scan, on plain rows). Both build `Facts` and call `judge`,
which hands a raised level to `ticketing.escalation` (催办/督办/专办). When a step starts, its
level boundaries (the instant each level begins: sla_levels.boundaries, working time from
ticketing.worktime) are computed once and stored on the row (sla_*_at, sla_bounds_step); from
then on a level is a comparison of `now` with them (sla_levels.level_from, mirrored in SQL by the
full scan). A state change is "the matter moving on": the step's level starts again from none;
between state changes levels only go up.

`sla_next_at` is written "now" by default on insert (any insert path, including intake's bulk
insert, is evaluated by the next scan round) and NULL once the row can no longer change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import bindparam
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as sa_select
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from config.loader import load_yaml
from config.settings import Settings, get_settings
from ticketing import events
from ticketing.errors import TicketingError
from ticketing.models import SubOrder, SubOrderStatus, Ticket, TicketStatus, utcnow
from ticketing.sla import add_duration, to_utc_naive
from ticketing.sla_levels import (
    RULE_LEVELS,
    SEVERITY,
    Clock,
    Rule,
    boundaries,
    higher,
    level_from,
    rules_from,
)
from ticketing.worktime import WorkCalendar

SS = SubOrderStatus
OPEN_TICKET = frozenset(
    {TicketStatus.pending_dispatch, TicketStatus.dispatched, TicketStatus.reopened}
)
ACCEPT_STEP = frozenset({SS.dispatched})
FINISH_STEP = frozenset({SS.accepted, SS.extension_requested})
_SETTINGS_KEY = "ticketing.sla.settings"


@dataclass(slots=True)  # one object per clock, not two (a round builds a thousand)
class Facts:
    """One clock's inputs and its stored outcome (a sub-order's or a ticket's)."""

    kind: str  # suborder | ticket
    id: int
    ticket_id: int
    round: int
    urgency: str
    category: str
    step: str | None  # None: the step is over (nothing runs)
    start: datetime
    due: datetime | None
    moved_at: datetime
    stored_level: str
    stored_step: str | None
    department: str | None = None
    cross_department: bool = False
    beyond_power: bool = False
    bounds: Bounds | None = None  # stored boundaries, valid for `step` (None: compute them)


Bounds = dict[str, datetime | None]  # level -> the instant it starts on the step (sla_levels)
BOUND_COLUMNS = {
    "blue": "sla_blue_at",
    "yellow": "sla_yellow_at",
    "red": "sla_red_at",
    "overdue": "sla_overdue_at",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    level: str
    step: str | None
    next_at: datetime | None
    raised: bool  # a higher level than stored, on the same step or a new one
    reasons: tuple[str, ...] = ()
    own: str = "none"  # the clock's own level (a ticket's without its sub-orders' floor)
    bounds: Bounds | None = None  # the step's boundaries (to store)


def stored_bounds(row: Any, step: str | None, due: datetime | None) -> Bounds | None:
    """The boundaries stored on a row (ORM object or plain row) when they belong to `step` and
    its due instant (a deadline changed behind the clocks makes them stale: computed again)."""
    if step is None or getattr(row, "sla_bounds_step", None) != step:
        return None
    if getattr(row, "sla_overdue_at", None) != due:
        return None
    return {lvl: getattr(row, col_) for lvl, col_ in BOUND_COLUMNS.items()}


def bound_values(out: Outcome) -> dict[str, Any]:
    """The columns to write for an outcome's boundaries (all NULL when the step is over)."""
    b = out.bounds or {}
    values: dict[str, Any] = {col_: b.get(lvl) for lvl, col_ in BOUND_COLUMNS.items()}
    values["sla_bounds_step"] = out.step if out.bounds is not None else None
    return values


def bind_settings(session: Session, settings: Settings) -> None:
    """The settings state-change re-evaluation uses in this session (else the process's)."""
    session.info[_SETTINGS_KEY] = settings


@lru_cache(maxsize=1)
def _process_settings() -> Settings:
    return get_settings()


def bound_settings(session: Session) -> Settings | None:
    got = session.info.get(_SETTINGS_KEY)
    return got if isinstance(got, Settings) else None


def settings_for(session: Session) -> Settings:
    """The bound settings, else the process's (the same in a deployment: config dir, calendar).
    Without bound settings nothing is enqueued from the hook: escalation SMS wait for the next
    scan round and other SMS for the outbox's own re-queue (ticketing.notify)."""
    return bound_settings(session) or _process_settings()


_RULES: dict[int, tuple[dict[str, Any], tuple[Rule, ...]]] = {}


def rules(settings: Settings) -> tuple[Rule, ...]:
    """The parsed `levels` of sla.yaml, parsed once per read of the file (load_yaml returns the
    same mapping until the file changes)."""
    cfg = load_yaml(settings, "sla.yaml")
    hit = _RULES.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    parsed = rules_from(cfg)
    if len(_RULES) > 16:
        _RULES.clear()
    _RULES[id(cfg)] = (cfg, parsed)
    return parsed


def accept_due(
    settings: Settings,
    category: str,
    urgency: str,
    dispatched_at: datetime,
    finish: datetime | None,
) -> datetime | None:
    """签收 deadline: sla.yaml accept_policy from dispatch, never later than the finish deadline."""
    policy = (load_yaml(settings, "sla.yaml").get("accept_policy") or {}).get(str(category)) or {}
    rule = policy.get(str(urgency))
    if not rule:
        return finish
    due = add_duration(settings, dispatched_at, rule["amount"], rule["unit"])
    return min(due, finish) if finish is not None else due


def suborder_step(status: str) -> str | None:
    if status in ACCEPT_STEP:
        return "accept"
    if status in FINISH_STEP:
        return "finish"
    return None


def judge(
    settings: Settings,
    facts: Facts,
    now: datetime,
    *,
    moved: bool,
    cal: WorkCalendar | None = None,
    floor: str = "none",
    rule_set: tuple[Rule, ...] | None = None,
) -> Outcome:
    """The clock's new level. moved: a state change just happened (the step starts afresh);
    floor: a level the result may not be below (a ticket shows its worst live sub-order).
    The step's boundaries are computed (rules and working time) only when it starts, or when
    none are stored for it; otherwise the level is a comparison of `now` with them."""
    if facts.step is None:
        return Outcome(facts.stored_level, facts.stored_step, None, False)
    same_step = facts.stored_step == facts.step
    reached = "none" if moved or not same_step else facts.stored_level
    bounds = None if moved else facts.bounds
    if bounds is None:
        cal = cal or WorkCalendar.shared(settings)
        clock = Clock(
            urgency=facts.urgency,
            step=facts.step,
            start=facts.start,
            due=facts.due,
            moved_at=facts.moved_at,
            cross_department=facts.cross_department,
            beyond_power=facts.beyond_power,
            reached=reached,
        )
        bounds = boundaries(rule_set or rules(settings), clock, cal.add_working_hours)
    own, next_at = level_from(bounds, reached, now)
    level = higher(own, floor)
    before = facts.stored_level if same_step else "none"
    raised = SEVERITY[level] > SEVERITY.get(before, 0) and not (
        moved and same_step and level == before
    )
    reasons = tuple(
        lvl
        for lvl in (*RULE_LEVELS, "overdue")
        if (at := bounds.get(lvl)) is not None and at <= now
    )
    return Outcome(level, facts.step, next_at, raised, reasons, own, bounds)


# ---------------------------------------------------------------- facts from rows / objects


def suborder_facts(
    settings: Settings, so: Any, urgency: str, category: str, now: datetime
) -> Facts:
    """Facts of a sub-order (an ORM object or a row with the same attribute names). Fills in
    a missing accept deadline on `so` when it is an ORM object (the caller writes rows)."""
    step = suborder_step(so.status)
    dispatched = so.dispatched_at
    due: datetime | None
    if step == "accept":
        due = so.accept_due_at or accept_due(
            settings, category, urgency, dispatched, so.deadline_at
        )
        moved_at = dispatched
        start = dispatched
    else:
        due = so.deadline_at
        start = dispatched
        moved_at = (so.accepted_at or now) if step == "finish" else dispatched
    return Facts(
        kind="suborder",
        id=so.id,
        ticket_id=so.ticket_id,
        round=so.round,
        urgency=urgency,
        category=category,
        step=step,
        start=start,
        due=due,
        moved_at=moved_at,
        stored_level=so.warning or "none",
        stored_step=so.warning_step,
        department=so.department_code,
        bounds=stored_bounds(so, step, due),
    )


def ticket_facts(
    ticket: Any, subs: list[Any], *, returned_is_beyond_power: bool = True
) -> tuple[Facts, str]:
    """Facts of a ticket and the worst level among its live current-round sub-orders."""
    live = [s for s in subs if s.round == ticket.round and s.status != SS.returned]
    returned = [s for s in subs if s.round == ticket.round and s.status == SS.returned]
    worst = "none"
    for s in live:
        if suborder_step(s.status) is not None:
            worst = higher(s.warning or "none", worst)
    open_ = ticket.status in OPEN_TICKET
    return (
        Facts(
            kind="ticket",
            id=ticket.id,
            ticket_id=ticket.id,
            round=ticket.round,
            urgency=ticket.urgency,
            category=ticket.category,
            step="ticket" if open_ else None,
            start=ticket.created_at,
            due=ticket.deadline_at,
            moved_at=ticket.updated_at or ticket.created_at,
            stored_level=ticket.warning or "none",
            stored_step="ticket",
            cross_department=len({s.department_code for s in live}) >= 2,
            beyond_power=returned_is_beyond_power and bool(returned),
        ),
        worst,
    )


# ---------------------------------------------------------------- the state-change hook


def touch(session: Session, ticket: Ticket, so: SubOrder | None = None) -> None:
    """Re-evaluate after a state change (the lifecycle calls this on every move): the sub-order
    (if any) and its ticket start their step afresh; a level the new state already has (e.g. a
    return as beyond the department's power: red) is raised and escalated now."""
    start_clocks(session, ticket, [so] if so is not None else [])


def start_clocks(session: Session, ticket: Ticket, subs: list[SubOrder]) -> None:
    """Start (or restart) the clocks of these sub-orders, just created or moved, and their
    ticket's: each step's boundaries computed once, here, and stored on the row (the scans only
    compare them with `now`). Called through ticketing.hooks by the lifecycle on every move and
    by the dispatch for the sub-orders it creates (their clocks run from the dispatch)."""
    settings = settings_for(session)
    deliver = bound_settings(session) is not None
    now = utcnow()
    cal = WorkCalendar.shared(settings)
    rule_set = rules(settings)
    try:
        for so in subs:
            if so.id is None:
                continue
            facts = suborder_facts(settings, so, ticket.urgency, ticket.category, now)
            out = judge(settings, facts, now, moved=True, cal=cal, rule_set=rule_set)
            _apply_suborder(session, settings, ticket, so, facts, out, now, deliver=deliver)
        if ticket.id is not None:
            current = (
                _round_subs(session, ticket.id, ticket.round)
                if ticket.status in OPEN_TICKET
                else []
            )
            reevaluate_ticket(
                session, settings, ticket, current, now, moved=True, cal=cal, deliver=deliver
            )
    except TicketingError:  # e.g. a policy gap in sla.yaml: the move stands, the scan retries
        for so in subs:
            so.sla_next_at, so.sla_bounds_step = now, None
        ticket.sla_next_at, ticket.sla_bounds_step = now, None


_SO_T = SubOrder.__table__  # type: ignore[attr-defined]
_SUB_FIELDS = ("id", "ticket_id", "round", "status", "department_code", "warning")
# built once (every state change runs it): the ticket's id is bound per call
_TICKET_SUBS = sa_select(*(_SO_T.c[f] for f in _SUB_FIELDS)).where(
    _SO_T.c.ticket_id == bindparam("tid")
)


class _Sub(NamedTuple):
    id: int | None
    ticket_id: int
    round: int
    status: str
    department_code: str
    warning: str | None


def _round_subs(session: Session, ticket_id: int, round_no: int) -> list[_Sub]:
    """What the ticket's clock reads of its current round's sub-orders, as plain rows.

    The stored rows, each overlaid with the session's own object for it (the values it holds,
    pending changes included), plus the session's new ones: what a flush then a read would
    give, without flushing the move's changes early (the ticket's row would be written twice)."""
    with session.no_autoflush:
        stored = session.execute(_TICKET_SUBS, {"tid": ticket_id}).all()
    subs: list[_Sub] = []
    for row in stored:
        obj = session.identity_map.get(identity_key(SubOrder, row.id))
        if obj is not None and obj in session.deleted:
            continue
        held = sa_inspect(obj).dict if obj is not None else {}
        subs.append(_Sub(*(held.get(f, getattr(row, f)) for f in _SUB_FIELDS)))
    subs += [
        _Sub(*(getattr(o, f) for f in _SUB_FIELDS))
        for o in session.new
        if isinstance(o, SubOrder) and o.ticket_id == ticket_id
    ]
    return [s for s in subs if s.round == round_no]


def _apply_suborder(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    so: SubOrder,
    facts: Facts,
    out: Outcome,
    now: datetime,
    *,
    deliver: bool = True,
) -> None:
    if facts.step == "accept" and so.accept_due_at is None:
        so.accept_due_at = facts.due
    previous = (so.warning, so.warning_step)
    so.warning, so.warning_step, so.sla_next_at = out.level, out.step, out.next_at
    for name, value in bound_values(out).items():
        setattr(so, name, value)
    session.add(so)
    if out.raised:
        _raised(session, settings, facts, previous, out, now, deliver=deliver)


def reevaluate_ticket(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    subs: list[Any],
    now: datetime,
    *,
    moved: bool,
    cal: WorkCalendar | None = None,
    deliver: bool = True,
) -> Outcome:
    facts, worst = ticket_facts(ticket, subs, returned_is_beyond_power=_returned_red(settings))
    out = judge(settings, facts, now, moved=moved, cal=cal, floor=worst)
    previous = (ticket.warning, "ticket")
    ticket.warning, ticket.sla_next_at = out.level, out.next_at
    for name, value in bound_values(out).items():
        setattr(ticket, name, value)
    session.add(ticket)
    if out.raised:
        _raised(session, settings, facts, previous, out, now, deliver=deliver)
    return out


def _returned_red(settings: Settings) -> bool:
    return bool(load_yaml(settings, "sla.yaml").get("returned_is_beyond_power", True))


def _raised(
    session: Session,
    settings: Settings,
    facts: Facts,
    previous: tuple[str, str | None],
    out: Outcome,
    now: datetime,
    *,
    deliver: bool = True,
) -> None:
    session.flush()
    record_raised(session, settings, [(facts, previous, out)], now, deliver=deliver)


def record_raised(
    session: Session,
    settings: Settings,
    items: list[tuple[Facts, tuple[str, str | None], Outcome]],
    now: datetime,
    *,
    deliver: bool = True,
) -> None:
    """For each raised clock: one "warning" event, and the escalations the new level sets off
    (a ticket raised only by a sub-order's level: that sub-order's clock escalated already)."""
    from ticketing.escalation import escalate_many

    if not items:
        return
    events.record_all(
        session,
        [
            events.entry(
                f.ticket_id,
                "system",
                "warning",
                suborder_id=f.id if f.kind == "suborder" else None,
                department=f.department,
                step=out.step,
                **{"from": prev[0] if prev[1] == out.step else "none", "to": out.level},
                due=f.due,
                reasons=list(out.reasons),
                raised=True,
            )
            for f, prev, out in items
        ],
    )
    escalate_many(
        session,
        settings,
        [
            (f, out.level)
            for f, _prev, out in items
            if not (f.kind == "ticket" and SEVERITY[out.own] < SEVERITY[out.level])
        ],
        now,
        deliver=deliver,
    )


def due_now(session: Session, ticket: Ticket) -> None:
    """Make the ticket due for the next scan round (after a change made without the lifecycle)."""
    ticket.sla_next_at = utcnow()
    session.add(ticket)


def open_suborders_of(session: Session, ticket_ids: list[int]) -> dict[int, list[SubOrder]]:
    out: dict[int, list[SubOrder]] = {}
    if not ticket_ids:
        return out
    for s in session.exec(select(SubOrder).where(col(SubOrder.ticket_id).in_(ticket_ids))):
        out.setdefault(s.ticket_id, []).append(s)
    return out


def as_utc(dt: datetime) -> datetime:
    return to_utc_naive(dt)
