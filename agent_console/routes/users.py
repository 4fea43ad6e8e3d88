"""User administration (admin; the leader may read the list). Any change to role, department, active or password bumps
token_version, so the user's existing sessions end and the new rights apply at the next login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from agent_console.deps import SessionDep, require
from agent_console.errors import responses
from agent_console.schemas import UserCreate, UserOut, UserUpdate
from agent_console.security import hash_password
from ticketing import Conflict, Department, InvalidInput, NotFound, Role, User

router = APIRouter(prefix="/users", tags=["users"])


def check_role_department(session: Session, role: str, department_code: str | None) -> None:
    """A handler belongs to exactly one existing department; the department must exist."""
    if role == Role.handler and not department_code:
        raise InvalidInput("部门经办人必须指定所属部门", code="department_required")
    if department_code is not None:
        dept = session.exec(select(Department).where(Department.code == department_code)).first()
        if dept is None:
            raise InvalidInput(
                f"部门不存在：{department_code}",
                code="unknown_department",
                department=department_code,
            )


@router.get("", name="users.list", response_model=list[UserOut], responses=responses(401, 403))
def list_users(session: SessionDep, _: User = Depends(require("users.list"))) -> list[UserOut]:
    users = session.exec(select(User).order_by(col(User.id))).all()
    return [UserOut.model_validate(u) for u in users]


@router.post(
    "",
    name="users.create",
    status_code=201,
    response_model=UserOut,
    responses=responses(401, 403, 409, 422),
)
def create_user(
    body: UserCreate, session: SessionDep, _: User = Depends(require("users.create"))
) -> UserOut:
    check_role_department(session, body.role, body.department_code)
    if session.exec(select(User).where(User.username == body.username)).first():
        raise Conflict(f"用户名已存在：{body.username}", code="username_taken")
    user = User(
        username=body.username,
        display_name=body.display_name,
        password_hash=hash_password(body.password),
        role=body.role.value,
        department_code=body.department_code,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as e:  # a concurrent create with the same name
        raise Conflict(f"用户名已存在：{body.username}", code="username_taken") from e
    return UserOut.model_validate(user)


@router.patch(
    "/{user_id}",
    name="users.update",
    response_model=UserOut,
    responses=responses(401, 403, 404, 422),
)
def update_user(
    user_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: UserUpdate,
    session: SessionDep,
    _: User = Depends(require("users.update")),
) -> UserOut:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户不存在：{user_id}", code="user_not_found")
    fields = body.model_fields_set
    role = body.role.value if "role" in fields and body.role else user.role
    dept = body.department_code if "department_code" in fields else user.department_code
    check_role_department(session, role, dept)
    revoke = False
    if "role" in fields and body.role and role != user.role:
        user.role, revoke = role, True
    if "department_code" in fields and dept != user.department_code:
        user.department_code, revoke = dept, True
    if "active" in fields and body.active is not None and body.active != user.active:
        user.active, revoke = body.active, True
    if "password" in fields and body.password:
        user.password_hash, revoke = hash_password(body.password), True
    if "display_name" in fields and body.display_name is not None:
        user.display_name = body.display_name
    if revoke:
        user.token_version += 1
    session.add(user)
    session.flush()
    return UserOut.model_validate(user)
