"""Departments and each department's inbox of sub-orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import select

from agent_console.access import is_handler
from agent_console.deps import SessionDep, TransactionRoute, require
from agent_console.errors import ApiError, responses
from agent_console.schemas import DepartmentOut, InboxItem, InboxOut, SubOrderOut, TicketOut
from ticketing import Department, SubOrderStatus, User, department_inbox

router = APIRouter(prefix="/departments", tags=["departments"], route_class=TransactionRoute)


@router.get(
    "",
    name="departments.list",
    response_model=list[DepartmentOut],
    responses=responses(401, 403),
)
def list_departments(
    session: SessionDep, _: User = Depends(require("departments.list"))
) -> list[DepartmentOut]:
    rows = session.exec(select(Department).order_by(Department.code)).all()
    return [DepartmentOut.model_validate(d) for d in rows]


@router.get(
    "/{code}/inbox",
    name="departments.inbox",
    response_model=InboxOut,
    responses=responses(401, 403, 404, 422),
)
def inbox(
    code: str,
    session: SessionDep,
    user: User = Depends(require("departments.inbox")),
    status: Annotated[
        list[SubOrderStatus] | None, Query(description="sub-order statuses (repeatable)")
    ] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> InboxOut:
    """The department's sub-orders, nearest deadline first. Handlers: their own department only."""
    if is_handler(user) and code != user.department_code:
        raise ApiError(403, "只能查看本部门的待办", details={"department": code})
    rows, total = department_inbox(
        session, code, [s.value for s in status or []] or None, page, page_size
    )
    return InboxOut(
        department=code,
        items=[
            InboxItem(suborder=SubOrderOut.model_validate(so), ticket=TicketOut.model_validate(t))
            for so, t in rows
        ],
        total=total,
        page=page,
        page_size=page_size,
    )
