"""§13 warnings kept current: Ticket.warning follows the share of the committed time used.

`scan_warnings` re-evaluates every open ticket with sla.warning_for (thresholds in sla.yaml) and
writes only what changed. The scheduler runs it every `warnings.scan_interval_s`
(callcenter/scheduler.py); the list filter `warning=`, the boards and the monthly assessment read
the stored level, so it must not wait for someone to open the ticket.

Each change is one "warning" event (from, to, share used, deadline): the history shows when a
matter turned yellow. The update is conditional on the level and status read, so a scan that races a
handler's action or a second scheduler writes nothing twice. A resolved or closed ticket keeps the
level it reached: the assessment counts warnings raised, not warnings still showing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from config.database import rowcount
from config.loader import load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.models import Ticket, TicketStatus, utcnow
from ticketing.sla import warning_for

OPEN = (TicketStatus.pending_dispatch, TicketStatus.dispatched, TicketStatus.reopened)
ACTOR = "system"
SEVERITY = {"none": 0, "blue": 1, "yellow": 2, "red": 3}


@dataclass
class ScanResult:
    checked: int = 0
    changed: Counter = field(default_factory=Counter)  # new level → tickets moved to it

    def as_dict(self) -> dict[str, object]:
        return {"checked": self.checked, "changed": dict(self.changed)}


def warning_scan_interval(settings: Settings) -> int:
    cfg = (load_yaml(settings, "sla.yaml") or {}).get("warnings") or {}
    return max(10, int(cfg.get("scan_interval_s", 60)))


def scan_warnings(
    session: Session, settings: Settings, *, now: datetime | None = None, batch: int = 2000
) -> ScanResult:
    """Bring every open ticket's warning level up to date; returns what changed."""
    now = now or utcnow()
    result = ScanResult()
    last_id = 0
    while True:
        rows = session.exec(
            select(  # type: ignore[call-overload]  # sqlmodel's overloads stop at 4 columns
                Ticket.id, Ticket.urgency, Ticket.created_at, Ticket.deadline_at, Ticket.warning
            )
            .where(
                col(Ticket.status).in_([s.value for s in OPEN]),
                col(Ticket.deadline_at).is_not(None),
                col(Ticket.id) > last_id,
            )
            .order_by(col(Ticket.id))
            .limit(batch)
        ).all()
        if not rows:
            return result
        last_id = rows[-1][0]
        result.checked += len(rows)
        for tid, urgency, created, deadline, old in rows:
            new = warning_for(settings, urgency, created, deadline, now)
            if new != old and _move(session, tid, old, new):
                result.changed[new] += 1
                used = (now - created).total_seconds() / max(
                    (deadline - created).total_seconds(), 1.0
                )
                events.record(
                    session,
                    tid,
                    ACTOR,
                    "warning",
                    **{"from": old, "to": new},
                    used_fraction=round(min(used, 99.0), 3),
                    deadline_at=deadline,
                    raised=SEVERITY.get(new, 0) > SEVERITY.get(old, 0),
                )


def _move(session: Session, ticket_id: int, old: str, new: str) -> bool:
    res = session.execute(
        update(Ticket)
        .where(
            Ticket.id == ticket_id,  # type: ignore[arg-type]
            Ticket.warning == old,  # type: ignore[arg-type]
            col(Ticket.status).in_([s.value for s in OPEN]),
        )
        .values(warning=new)
    )
    return rowcount(res) == 1
