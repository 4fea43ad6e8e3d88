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

from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing.escalation import send_held
from ticketing.models import SubOrder, Ticket, utcnow
from ticketing.sla_clocks import (
    OPEN_TICKET,
    _apply_suborder,
    judge,
    open_suborders_of,
    reevaluate_ticket,
    suborder_facts,
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


def scan_round(
    session: Session,
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = 1000,
    max_rows: int | None = None,
) -> ScanResult:
    """One incremental round: every due sub-order, then every due ticket, then held SMS."""
    now = now or utcnow()
    cal = WorkCalendar(settings)
    result = ScanResult()
    tickets_due: set[int] = set()
    while max_rows is None or result.suborders < max_rows:
        rows = list(
            session.exec(
                select(SubOrder, Ticket)
                .join(Ticket, col(Ticket.id) == col(SubOrder.ticket_id))
                .where(col(SubOrder.sla_next_at) <= now)
                .order_by(col(SubOrder.sla_next_at), col(SubOrder.id))
                .limit(batch)
                .with_for_update(of=SubOrder, skip_locked=True)  # type: ignore[arg-type]
            )
        )
        if not rows:
            break
        for so, ticket in rows:
            facts = suborder_facts(settings, so, ticket.urgency, ticket.category, now)
            out = judge(settings, facts, now, moved=False, cal=cal)
            _apply_suborder(session, settings, ticket, so, facts, out, now)
            if out.raised:
                result.raised[out.level] += 1
            if (out.raised and SEVERITY[out.level] > SEVERITY.get(ticket.warning, 0)) or (
                facts.stored_step != out.step  # first look, or moved behind the lifecycle
            ):
                tickets_due.add(ticket.id or 0)  # its ticket's facts changed too
        result.suborders += len(rows)
        session.flush()
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
    pending_extra = set(extra)
    while True:
        q = select(Ticket).where(col(Ticket.sla_next_at) <= now)
        if pending_extra:
            q = select(Ticket).where(
                (col(Ticket.sla_next_at) <= now) | col(Ticket.id).in_(list(pending_extra))
            )
        tickets = list(
            session.exec(q.order_by(col(Ticket.id)).limit(batch).with_for_update(skip_locked=True))
        )
        pending_extra.clear()
        if not tickets:
            return seen
        subs = open_suborders_of(
            session, [t.id for t in tickets if t.id is not None and t.status in OPEN_TICKET]
        )
        for t in tickets:
            mine = [s for s in subs.get(t.id or 0, []) if s.round == t.round]
            out = reevaluate_ticket(session, settings, t, mine, now, moved=False, cal=cal)
            if out.raised:
                result.raised[out.level] += 1
            if t.sla_next_at is not None and t.sla_next_at <= now:
                t.sla_next_at = None  # evaluated; nothing pending at this instant
                session.add(t)
        seen += len(tickets)
        session.flush()
        if len(tickets) < batch:
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
