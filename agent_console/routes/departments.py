"""Departments, each department's inbox of sub-orders, and the administrator's edits (kept in the
database: departments.yaml is only the seed; a change reaches every process without a restart)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session

from agent_console.access import is_handler
from agent_console.deps import SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import ApiError, responses
from agent_console.schemas import (
    DepartmentAdminOut,
    DepartmentChange,
    DepartmentCreate,
    DepartmentOut,
    InboxItem,
    InboxOut,
    SubOrderOut,
    TicketOut,
)
from config.settings import Settings
from ticketing import (
    Department,
    DepartmentEdit,
    SubOrderStatus,
    User,
    all_departments,
    create_department,
    department_inbox,
    department_keywords,
    set_department_keywords,
    split_keywords,
    update_department,
)

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
    return [DepartmentOut.model_validate(d) for d in all_departments(session)]


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


def _edit(body: DepartmentChange) -> DepartmentEdit:
    return DepartmentEdit(
        name=body.name,
        head_name=body.head_name,
        head_phone=body.head_phone,
        leaders=body.leaders,
        handoff_url=body.handoff_url,
        handoff_secret=body.handoff_secret,
        active=body.active,
    )


def _admin_out(settings: Settings, dept: Department, words: list[str] | None) -> DepartmentAdminOut:
    out = DepartmentAdminOut.model_validate(dept)
    out.has_handoff_secret = bool(dept.handoff_secret)
    out.routing_keywords = (
        words if words is not None else department_keywords(settings)[0].get(dept.code, [])
    )
    return out


def _keywords(
    session: Session, settings: Settings, code: str, body: DepartmentChange, by: str
) -> list[str] | None:
    """Store the department's routing keywords when given; they are the response's (the
    stored setting reaches this process's cache after the commit)."""
    if body.routing_keywords is None:
        return None
    words = split_keywords("\n".join(body.routing_keywords))
    set_department_keywords(session, settings, code, words, by=by)
    return words


@router.post(
    "",
    name="departments.create",
    status_code=201,
    response_model=DepartmentAdminOut,
    responses=responses(401, 403, 409, 422),
)
def create(
    body: DepartmentCreate,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("departments.create")),
) -> DepartmentAdminOut:
    """A new department (admin). The hand-off secret is accepted, never returned."""
    dept = create_department(session, body.code, _edit(body), by=user.username, settings=settings)
    words = _keywords(session, settings, dept.code, body, user.username)
    return _admin_out(settings, dept, words)


@router.patch(
    "/{code}",
    name="departments.update",
    response_model=DepartmentAdminOut,
    responses=responses(401, 403, 404, 422),
)
def update(
    code: str,
    body: DepartmentChange,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("departments.update")),
) -> DepartmentAdminOut:
    """Change a department (admin): fields absent are kept; handoff_secret "" removes it."""
    dept = update_department(session, code, _edit(body), by=user.username, settings=settings)
    words = _keywords(session, settings, code, body, user.username)
    return _admin_out(settings, dept, words)
