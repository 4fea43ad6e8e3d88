"""The append-only ticket history. Every state change goes through `record`; rows are never updated."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from ticketing.models import TicketEvent, utcnow


def record(
    session: Session,
    ticket_id: int,
    actor: str,
    action: str,
    *,
    suborder_id: int | None = None,
    **detail: Any,
) -> TicketEvent:
    ev = TicketEvent(
        ticket_id=ticket_id,
        suborder_id=suborder_id,
        actor=actor,
        action=action,
        detail=_jsonable(detail),
        at=utcnow(),
    )
    session.add(ev)
    return ev


def history(session: Session, ticket_id: int) -> list[TicketEvent]:
    return list(
        session.exec(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.at, TicketEvent.id)
        )
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_jsonable(x) for x in v]
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
