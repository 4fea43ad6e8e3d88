"""Correcting a ticket's category and urgency after intake (the classifier or the agent got it wrong).

A dispatcher (or the agent while still on the call) sets the right grade with a reason; the change
is an event ("reclassified") naming both grades, the reason and both deadlines. The committed
deadline follows the new grade counted from the moment of the correction (the SLA policy of the
new category and urgency, ticketing.sla.deadline_for), and every open sub-order that kept the old
committed deadline moves with it (a deadline a dispatcher set on purpose stays).
"""

from __future__ import annotations

from sqlmodel import Session

from config.settings import Settings
from ticketing import events
from ticketing.dispatch import local_text
from ticketing.errors import Conflict, InvalidInput
from ticketing.lifecycle import TICKET_LABELS, lock_ticket, round_suborders
from ticketing.models import Category, SubOrderStatus, Ticket, TicketStatus, Urgency, utcnow
from ticketing.sla import deadline_for
from ticketing.text import normalise_text

CORRECTABLE = frozenset(
    {TicketStatus.pending_dispatch, TicketStatus.dispatched, TicketStatus.reopened}
)
_OPEN = frozenset(
    {SubOrderStatus.dispatched, SubOrderStatus.accepted, SubOrderStatus.extension_requested}
)
CATEGORY_LABELS = {"enterprise": "企业服务", "government": "政务服务", "complaint": "投诉咨询"}
URGENCY_LABELS = {"general": "一般", "urgent": "较紧急", "critical": "紧要"}


def reclassify(
    session: Session,
    settings: Settings,
    ticket_id: int,
    *,
    actor: str,
    reason: str,
    category: str | None = None,
    urgency: str | None = None,
) -> Ticket:
    """Set the ticket's category and/or urgency; the deadline follows the new grade from now."""
    why = normalise_text(reason)
    if not why:
        raise InvalidInput("更正理由不能为空", field="reason")
    if len(why) > 1000:
        raise InvalidInput("更正理由不能超过 1000 个字", field="reason", max_length=1000)
    if category is not None and category not in set(Category):
        raise InvalidInput("事项类别应为 企业服务、政务服务 或 投诉咨询", field="category")
    if urgency is not None and urgency not in set(Urgency):
        raise InvalidInput("紧急程度应为 一般、较紧急 或 紧要", field="urgency")
    ticket = lock_ticket(session, ticket_id)
    new_cat = category or ticket.category
    new_urg = urgency or ticket.urgency
    if (new_cat, new_urg) == (ticket.category, ticket.urgency):
        raise InvalidInput("类别和紧急程度与现状相同，无需更正", field="category")
    if ticket.status not in CORRECTABLE:
        raise Conflict(
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”，"
            "不能更正类别或紧急程度",
            code="illegal_transition",
            current=ticket.status,
        )
    now = utcnow()
    deadline, basis = deadline_for(settings, new_cat, new_urg, now)
    previous = ticket.deadline_at
    moved = []
    for so in round_suborders(session, ticket):
        if so.status in _OPEN and so.deadline_at == previous:
            so.deadline_at = deadline
            session.add(so)
            moved.append(so.id)
    events.record(
        session,
        ticket.id,
        actor,
        "reclassified",
        reason=why,
        category={"from": ticket.category, "to": new_cat},
        urgency={"from": ticket.urgency, "to": new_urg},
        previous_deadline=previous,
        deadline=deadline,
        sla_basis=basis,
        suborders_moved=moved,
        summary=(
            f"{CATEGORY_LABELS.get(ticket.category, ticket.category)}·"
            f"{URGENCY_LABELS.get(ticket.urgency, ticket.urgency)} → "
            f"{CATEGORY_LABELS.get(new_cat, new_cat)}·{URGENCY_LABELS.get(new_urg, new_urg)}，"
            f"时限 {local_text(settings, previous)} → {local_text(settings, deadline)}"
        ),
    )
    ticket.category = new_cat
    ticket.urgency = new_urg
    ticket.deadline_at = deadline
    ticket.sla_basis = basis
    ticket.updated_at = now
    session.add(ticket)
    return ticket
