"""What follows every state change, called by the lifecycle (ticketing.lifecycle) after each move:
the §13 clocks are re-evaluated (ticketing.sla_clocks.touch). One place, so the state machine
stays a table. The §15 rating request on resolution is the submitter's resolution notice
(ticketing.submitter_notices.tell_resolved, sent by ticketing.dispatch once the move that resolved
the ticket is complete: it carries the departments' replies)."""

from __future__ import annotations

from sqlmodel import Session

from ticketing.models import SubOrder, Ticket


def after_ticket_move(session: Session, ticket: Ticket, before: str, to: str) -> None:
    from ticketing import sla_clocks

    sla_clocks.touch(session, ticket)


def after_suborder_move(session: Session, ticket: Ticket, so: SubOrder) -> None:
    from ticketing import sla_clocks

    sla_clocks.touch(session, ticket, so)


def after_dispatch(session: Session, ticket: Ticket, created: list[SubOrder]) -> None:
    """New sub-orders: their accept clocks start at the dispatch, not at the next scan round."""
    from ticketing import sla_clocks

    if created:
        sla_clocks.start_clocks(session, ticket, created)
