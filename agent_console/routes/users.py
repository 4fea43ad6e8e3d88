"""User administration (admin; the leader may read the list). Any change to role, department, active or password bumps
token_version, so the user's existing sessions end and the new rights apply at the next login.

Usernames are unique regardless of case ("Admin" and "admin" cannot coexist; a unique index on
lower(username) backs the check). New passwords pass security.password_problem. No change may
leave the system without an active admin (the last one cannot deactivate or demote itself)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from agent_console.deps import SessionDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.schemas import UserCreate, UserOut, UserUpdate
from agent_console.security import hash_password, password_problem
from ticketing import Conflict, Department, InvalidInput, NotFound, Role, User

router = APIRouter(prefix="/users", tags=["users"], route_class=TransactionRoute)


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


def check_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem, code="weak_password", field="password")


def username_taken(session: Session, username: str) -> bool:
    return (
        session.exec(select(User.id).where(func.lower(User.username) == username.lower())).first()
        is not None
    )


def _other_active_admins(session: Session, user_id: int) -> int:
    """Active admins besides this one, their rows locked (PostgreSQL) so two admins demoting each
    other at once cannot both pass; SQLite serialises writers anyway."""
    rows = session.exec(
        select(User.id)
        .where(User.role == Role.admin, User.active, User.id != user_id)
        .order_by(col(User.id))
        .with_for_update()
    ).all()
    return len(rows)


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
    # hashed before the first statement: no transaction (SQLite's writer lock) waits on Argon2
    password_hash = hash_password(body.password)
    check_role_department(session, body.role, body.department_code)
    check_password(body.password)
    if username_taken(session, body.username):
        raise Conflict(f"用户名已存在：{body.username}", code="username_taken")
    user = User(
        username=body.username,
        display_name=body.display_name,
        password_hash=password_hash,
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
    responses=responses(401, 403, 404, 409, 422),
)
def update_user(
    user_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: UserUpdate,
    session: SessionDep,
    _: User = Depends(require("users.update")),
) -> UserOut:
    # hashed before the first statement: no transaction (SQLite's writer lock) waits on Argon2
    new_hash = hash_password(body.password) if body.password else None
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户不存在：{user_id}", code="user_not_found")
    fields = body.model_fields_set
    role = body.role.value if "role" in fields and body.role else user.role
    dept = body.department_code if "department_code" in fields else user.department_code
    check_role_department(session, role, dept)
    if "password" in fields and body.password:
        check_password(body.password)
    active = body.active if "active" in fields and body.active is not None else user.active
    if (
        user.role == Role.admin
        and user.active
        and (role != Role.admin or not active)
        and _other_active_admins(session, user.id or 0) == 0  # loaded: id set
    ):
        raise Conflict(
            "这是最后一个有效的管理员账号，不能停用或降级（请先设置另一个管理员）",
            code="last_admin",
        )
    revoke = False
    if "role" in fields and body.role and role != user.role:
        user.role, revoke = role, True
    if "department_code" in fields and dept != user.department_code:
        user.department_code, revoke = dept, True
    if "active" in fields and body.active is not None and body.active != user.active:
        user.active, revoke = body.active, True
    if "password" in fields and new_hash:
        user.password_hash, revoke = new_hash, True
    if "display_name" in fields and body.display_name is not None:
        user.display_name = body.display_name
    if revoke:
        user.token_version += 1
    session.add(user)
    session.flush()
    return UserOut.model_validate(user)
