"""User administration: the one place the rules live, called by the API (routes/users.py) and the
administrator's pages (web/admin_users.py).

Usernames are unique regardless of case and new passwords pass password_problem: those two
rules are ticketing.users', which the `callcenter user` commands obey too. Any change to
role, department, active or password bumps token_version, so the user's existing sessions end and
the new rights apply at the next login. No change may leave the system without an active admin:
the last one can be neither deactivated nor demoted (users are never deleted, only deactivated).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from agent_console.security import hash_password
from ticketing import (
    Conflict,
    Department,
    InvalidInput,
    NotFound,
    Role,
    User,
    password_problem,
    username_taken,
)


def check_role_department(session: Session, role: str, department_code: str | None) -> None:
    """A handler belongs to exactly one existing department; the department must exist."""
    if role == Role.handler and not department_code:
        raise InvalidInput("部门承办人必须指定所属部门", code="department_required")
    if department_code is not None:
        dept = session.exec(select(Department).where(Department.code == department_code)).first()
        if dept is None:
            raise InvalidInput(
                f"部门不存在：{department_code}",
                code="unknown_department",
                department=department_code,
            )


def check_head(role: str, is_head: bool) -> None:
    """Only a department's handler can be its head (单位负责人, who acknowledges 督办)."""
    if is_head and role != Role.handler:
        raise InvalidInput("只有部门承办人可以设为单位负责人", code="head_not_handler")


def check_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem, code="weak_password", field="password")


def other_active_admins(session: Session, user_id: int) -> int:
    """Active admins besides this one, their rows locked (PostgreSQL) so two admins demoting each
    other at once cannot both pass; SQLite serialises writers anyway."""
    rows = session.exec(
        select(User.id)
        .where(User.role == Role.admin, User.active, User.id != user_id)
        .order_by(col(User.id))
        .with_for_update()
    ).all()
    return len(rows)


def generate_password() -> str:
    """A one-time password for a reset (shown once to the administrator, never stored plain)."""
    while True:
        pw = secrets.token_urlsafe(12)
        if password_problem(pw) is None:
            return pw


def create_user(
    session: Session,
    *,
    username: str,
    password_hash: str,
    password: str,
    role: str,
    department_code: str | None,
    display_name: str = "",
    is_head: bool = False,
) -> User:
    """A new user. `password_hash` is computed by the caller before its transaction (Argon2 is
    slow: no writer lock waits on it); `password` is checked here."""
    check_role_department(session, role, department_code)
    check_head(role, is_head)
    check_password(password)
    if username_taken(session, username):
        raise Conflict(f"用户名已存在：{username}", code="username_taken")
    user = User(
        username=username,
        display_name=display_name,
        password_hash=password_hash,
        role=role,
        department_code=department_code,
        is_head=is_head,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as e:  # a concurrent create with the same name
        raise Conflict(f"用户名已存在：{username}", code="username_taken") from e
    return user


@dataclass
class UserChange:
    """Fields to change; None leaves a field as it is, except department_code, which is changed
    when `set_department` is true (None then means "no department")."""

    role: str | None = None
    department_code: str | None = None
    set_department: bool = False
    active: bool | None = None
    password: str | None = None
    password_hash: str | None = None  # hashed by the caller before the transaction
    display_name: str | None = None
    is_head: bool | None = None  # the department's head (a handler only)


def update_user(session: Session, user_id: int, change: UserChange) -> User:
    """Apply `change` under the rules above; NotFound, InvalidInput or Conflict(last_admin)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户不存在：{user_id}", code="user_not_found")
    role = change.role or user.role
    dept = change.department_code if change.set_department else user.department_code
    check_role_department(session, role, dept)
    # a head stays one only as its department's handler (a change of role ends it)
    is_head = change.is_head if change.is_head is not None else user.is_head
    if change.is_head is None and role != Role.handler:
        is_head = False
    check_head(role, is_head)
    if change.password:
        check_password(change.password)
    active = change.active if change.active is not None else user.active
    if (
        user.role == Role.admin
        and user.active
        and (role != Role.admin or not active)
        and other_active_admins(session, user.id or 0) == 0  # loaded: id set
    ):
        raise Conflict(
            "这是最后一个有效的管理员账号，不能停用或降级（请先设置另一个管理员）",
            code="last_admin",
        )
    revoke = False
    if role != user.role:
        user.role, revoke = role, True
    if dept != user.department_code:
        user.department_code, revoke = dept, True
    if active != user.active:
        user.active, revoke = active, True
    if change.password:
        user.password_hash = change.password_hash or hash_password(change.password)
        revoke = True
    if change.display_name is not None:
        user.display_name = change.display_name
    user.is_head = is_head
    if revoke:
        user.token_version += 1
    session.add(user)
    session.flush()
    return user


def all_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.id))))
