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
unique by their dedup_key anyway. `full_scan` re-evaluates every open row (after a change of
the rules in sla.yaml): the same code over all rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlmodel import Session, col

from config.settings import Settings
from ticketing.escalation import send_held
from ticketing.models import SubOrder, Ticket, utcnow
from ticketing.sla_clocks import (
    OPEN_TICKET,
    Facts,
    Outcome,
    _returned_red,
    judge,
    record_raised,
    rules,
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
_SO_COLS = (
    _SO.c.id,
    _SO.c.ticket_id,
    _SO.c.round,
    _SO.c.status,
    _SO.c.department_code,
    _SO.c.dispatched_at,
    _SO.c.accepted_at,
    _SO.c.deadline_at,
    _SO.c.accept_due_at,
    _SO.c.warning,
    _SO.c.warning_step,
)
_SO_UPDATE = (
    _SO.update()
    .where(_SO.c.id == bindparam("b_id"))
    .values(
        warning=bindparam("b_level"),
        warning_step=bindparam("b_step"),
        sla_next_at=bindparam("b_next"),
        accept_due_at=bindparam("b_accept_due"),
    )
)
_T_UPDATE = (
    _T.update()
    .where(_T.c.id == bindparam("b_id"))
    .values(warning=bindparam("b_level"), sla_next_at=bindparam("b_next"))
)


def scan_round(
    session: Session,
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = 1000,
    max_rows: int | None = None,
) -> ScanResult:
    """One incremental round: every due sub-order, then every due ticket, then held SMS. Plain
    rows and multi-row updates (no ORM objects): a round costs what is due."""
    now = now or utcnow()
    cal = WorkCalendar.shared(settings)
    result = ScanResult()
    rule_set = rules(settings)
    tickets_due: set[int] = set()
    while max_rows is None or result.suborders < max_rows:
        rows = session.execute(
            select(*_SO_COLS, _T.c.urgency, _T.c.category, _T.c.warning.label("ticket_warning"))
            .join(_T, _T.c.id == _SO.c.ticket_id)
            .where(_SO.c.sla_next_at <= now)
            .order_by(_SO.c.sla_next_at, _SO.c.id)
            .limit(batch)
            .with_for_update(of=_SO, skip_locked=True)
        ).all()
        if not rows:
            break
        updates: list[dict[str, Any]] = []
        raised: list[tuple[Facts, tuple[str, str | None], Outcome]] = []
        for r in rows:
            facts = suborder_facts(settings, r, r.urgency, r.category, now)
            out = judge(settings, facts, now, moved=False, cal=cal, rule_set=rule_set)
            accept_due = r.accept_due_at
            if facts.step == "accept" and accept_due is None:
                accept_due = facts.due
            updates.append(
                {
                    "b_id": r.id,
                    "b_level": out.level,
                    "b_step": out.step,
                    "b_next": out.next_at,
                    "b_accept_due": accept_due,
                }
            )
            if out.raised:
                result.raised[out.level] += 1
                raised.append((facts, (r.warning, r.warning_step), out))
            if (out.raised and SEVERITY[out.level] > SEVERITY.get(r.ticket_warning, 0)) or (
                facts.stored_step != out.step  # first look, or moved behind the lifecycle
            ):
                tickets_due.add(r.ticket_id)  # its ticket's facts changed too
        session.execute(_SO_UPDATE, updates)
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
    while True:
        if extra_ids:  # tickets whose sub-orders changed, first (in chunks)
            chunk, extra_ids = extra_ids[:batch], extra_ids[batch:]
            cond = _T.c.id.in_(chunk)
        else:
            cond = _T.c.sla_next_at <= now
        tickets = session.execute(
            select(_T)
            .where(cond)
            .order_by(_T.c.sla_next_at, _T.c.id)  # the index's order: a probe, not a scan
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        if not tickets:
            if extra_ids:
                continue
            return seen
        open_ids = [t.id for t in tickets if t.status in OPEN_TICKET]
        subs: dict[int, list[Any]] = {}
        if open_ids:
            for srow in session.execute(
                select(
                    _SO.c.ticket_id,
                    _SO.c.round,
                    _SO.c.status,
                    _SO.c.department_code,
                    _SO.c.warning,
                ).where(_SO.c.ticket_id.in_(open_ids))
            ):
                subs.setdefault(srow.ticket_id, []).append(srow)
        updates: list[dict[str, Any]] = []
        raised: list[tuple[Facts, tuple[str, str | None], Outcome]] = []
        for t in tickets:
            mine = [x for x in subs.get(t.id, []) if x.round == t.round]
            facts, worst = ticket_facts(t, mine, returned_is_beyond_power=returned_red)
            out = judge(
                settings, facts, now, moved=False, cal=cal, floor=worst, rule_set=rules(settings)
            )
            if out.level != t.warning or out.next_at != t.sla_next_at:
                updates.append({"b_id": t.id, "b_level": out.level, "b_next": out.next_at})
            if out.raised:
                result.raised[out.level] += 1
                raised.append((facts, (t.warning, "ticket"), out))
        if updates:
            session.execute(_T_UPDATE, updates)
        record_raised(session, settings, raised, now)
        seen += len(tickets)
        if len(tickets) < batch and not extra_ids:
            return seen


def full_scan(
    session: Session, settings: Settings, *, now: datetime | None = None, batch: int = 5000
) -> ScanResult:
    """Re-evaluate every open sub-order and ticket (e.g. after the rules in sla.yaml changed):
    marks them all due, then runs a round."""
    now = now or utcnow()
    from sqlalchemy import update

    from ticketing.sla_clocks import ACCEPT_STEP, FINISH_STEP

    session.execute(
        update(SubOrder)
        .where(col(SubOrder.status).in_([*ACCEPT_STEP, *FINISH_STEP]))
        .values(sla_next_at=now)
    )
    session.execute(
        update(Ticket).where(col(Ticket.status).in_(list(OPEN_TICKET))).values(sla_next_at=now)
    )
    return scan_round(session, settings, now=now, batch=batch)
