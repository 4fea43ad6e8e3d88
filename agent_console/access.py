"""Row-level access on top of the role matrix: a department handler sees only tickets on which its
department has a sub-order (any round), and acts only on its own department's sub-orders.

Anything outside that answers 404 exactly like a ticket that does not exist, so a handler cannot
learn which ticket numbers or sub-order ids exist elsewhere.
"""

from __future__ import annotations

from sqlmodel import Session, select

from ticketing import NotFound, Role, SubOrder, Ticket, User, get_ticket_by_number


def is_handler(user: User) -> bool:
    return user.role == Role.handler


def visible_ticket(session: Session, user: User, number: str) -> Ticket:
    ticket = get_ticket_by_number(session, number)
    if is_handler(user):
        own = session.exec(
            select(SubOrder.id).where(
                SubOrder.ticket_id == ticket.id, SubOrder.department_code == user.department_code
            )
        ).first()
        if own is None:
            raise NotFound(f"未找到工单：{number}", field="number")
    return ticket


def visible_suborder(session: Session, user: User, suborder_id: int) -> SubOrder:
    so = session.get(SubOrder, suborder_id)
    if so is None or (is_handler(user) and so.department_code != user.department_code):
        raise NotFound(f"子工单不存在：{suborder_id}", suborder_id=suborder_id)
    return so


def handler_department(user: User) -> str | None:
    """The department a service call is restricted to (None: not restricted)."""
    return user.department_code if is_handler(user) else None
