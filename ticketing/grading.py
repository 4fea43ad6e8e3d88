"""Correct a ticket's category / urgency (分类分级更正) — with a reason, on the record. Exported as
`ticketing.regrade` (the module has another name: a submodule named like the function would
shadow it on the package).

THIN VERSION (engineer ws9, for the agent console): engineer "loop18" is building the full
"correct category/urgency" service in ticketing in parallel; the lead merges the two into one.
What this one does and the full one must keep: the change is refused without a reason, recorded
as a `regraded` event (from → to, reason, who), and the committed deadline is recomputed from the
intake time by the one SLA rule (ticketing.sla.deadline_for) while the matter is still open.
Sub-orders already out keep their own deadlines (their departments committed to them).
"""

from __future__ import annotations

from sqlmodel import Session

from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.events import record
from ticketing.lifecycle import lock_ticket
from ticketing.models import Category, Ticket, TicketStatus, Urgency, utcnow
from ticketing.sla import deadline_for
from ticketing.text import normalise_text

REASON_CHARS = 200
_OPEN = frozenset({TicketStatus.pending_dispatch, TicketStatus.dispatched, TicketStatus.reopened})


def regrade(
    session: Session,
    settings: Settings,
    ticket_id: int | None,
    *,
    category: str,
    urgency: str,
    reason: str,
    actor: str,
) -> Ticket:
    """The ticket with its category/urgency corrected (unchanged, no event, when both match).

    InvalidInput for an unknown category or urgency or a missing reason."""
    if category not in Category.__members__:
        raise InvalidInput(f"未知的事项类别：{category}", field="category")
    if urgency not in Urgency.__members__:
        raise InvalidInput(f"未知的紧急程度：{urgency}", field="urgency")
    ticket = lock_ticket(session, ticket_id)
    if ticket.category == category and ticket.urgency == urgency:
        return ticket
    why = normalise_text(reason).strip()
    if not why:
        raise InvalidInput("更正分类或紧急程度须填写原因", field="reason")
    if len(why) > REASON_CHARS:
        raise InvalidInput(f"更正原因不超过 {REASON_CHARS} 字", field="reason")
    before = (ticket.category, ticket.urgency, ticket.deadline_at)
    ticket.category, ticket.urgency = category, urgency
    if ticket.status in _OPEN:
        ticket.deadline_at, ticket.sla_basis = deadline_for(
            settings, category, urgency, ticket.created_at
        )
    ticket.updated_at = utcnow()
    session.add(ticket)
    session.flush()
    record(
        session,
        ticket.id,
        actor,
        "regraded",
        from_category=before[0],
        to_category=category,
        from_urgency=before[1],
        to_urgency=urgency,
        reason=why,
        from_deadline=before[2],
        deadline=ticket.deadline_at,
    )
    return ticket
