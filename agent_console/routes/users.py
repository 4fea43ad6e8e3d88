"""User administration over HTTP (admin; the leader may read the list). The rules (unique names
regardless of case, password policy, sessions revoked on a change, never without an active
admin) live in agent_console.user_admin, which the administrator's pages call too."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent_console.deps import RowId, SessionDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.schemas import UserCreate, UserOut, UserUpdate
from agent_console.security import hash_password
from agent_console.user_admin import UserChange, all_users, create_user, update_user
from ticketing import User

router = APIRouter(prefix="/users", tags=["users"], route_class=TransactionRoute)


@router.get("", name="users.list", response_model=list[UserOut], responses=responses(401, 403))
def list_users(session: SessionDep, _: User = Depends(require("users.list"))) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in all_users(session)]


@router.post(
    "",
    name="users.create",
    status_code=201,
    response_model=UserOut,
    responses=responses(401, 403, 409, 422),
)
def create_user_route(
    body: UserCreate, session: SessionDep, _: User = Depends(require("users.create"))
) -> UserOut:
    # hashed before the first statement: no transaction (SQLite's writer lock) waits on Argon2
    password_hash = hash_password(body.password)
    user = create_user(
        session,
        username=body.username,
        password_hash=password_hash,
        password=body.password,
        role=body.role.value,
        department_code=body.department_code,
        display_name=body.display_name,
        is_head=body.is_head,
    )
    return UserOut.model_validate(user)


@router.patch(
    "/{user_id}",
    name="users.update",
    response_model=UserOut,
    responses=responses(401, 403, 404, 409, 422),
)
def update_user_route(
    user_id: RowId,
    body: UserUpdate,
    session: SessionDep,
    _: User = Depends(require("users.update")),
) -> UserOut:
    # hashed before the first statement: no transaction (SQLite's writer lock) waits on Argon2
    new_hash = hash_password(body.password) if body.password else None
    fields = body.model_fields_set
    change = UserChange(
        role=body.role.value if "role" in fields and body.role else None,
        department_code=body.department_code,
        set_department="department_code" in fields,
        active=body.active if "active" in fields else None,
        password=body.password if "password" in fields else None,
        password_hash=new_hash,
        display_name=body.display_name if "display_name" in fields else None,
        is_head=body.is_head if "is_head" in fields and body.is_head is not None else None,
    )
    return UserOut.model_validate(update_user(session, user_id, change))
