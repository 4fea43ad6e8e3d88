"""What follows every state change, called by the lifecycle (ticketing.lifecycle) after each move:
the §13 clocks are re-evaluated (ticketing.sla_clocks.touch) and, when a ticket resolves, the
§15 rating request goes out (ticketing.followup). One place, so the state machine stays a table."""

from __future__ import annotations

from sqlmodel import Session

from ticketing.models import SubOrder, Ticket, TicketStatus


def after_ticket_move(session: Session, ticket: Ticket, before: str, to: str) -> None:
    from ticketing import followup, sla_clocks

    sla_clocks.touch(session, ticket)
    if to == TicketStatus.resolved and before != TicketStatus.resolved:
        bound = sla_clocks.bound_settings(session)
        followup.on_resolved(
            session, bound or sla_clocks.settings_for(session), ticket, enqueue=bound is not None
        )


def after_suborder_move(session: Session, ticket: Ticket, so: SubOrder) -> None:
    from ticketing import sla_clocks

    sla_clocks.touch(session, ticket, so)
