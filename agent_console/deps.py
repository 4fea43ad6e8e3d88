"""Request-scoped dependencies: one DB transaction per request, and the authenticated user.

The session dependency has scope="function": it commits (or rolls back) when the route returns,
BEFORE the response is sent, so a client never sees 200 for something that failed to commit, and
an error anywhere in the request leaves nothing half-written. GET/HEAD use read-only sessions
(SQLite: a deferred transaction that never queues behind writers).

Hot write routes (tickets.create) instead take `require_principal` and run their whole transaction
in one threadpool call: no request session is held across the event loop, and the user is still
re-read and checked on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis import Redis
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from agent_console.errors import ApiError
from agent_console.roles import ROLE_MATRIX
from agent_console.security import COOKIE_NAME, CSRF_HEADER, TokenClaims, read_token
from config.database import readonly, session_scope
from config.settings import Settings
from ticketing import User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Trivial lookups are `async def` so FastAPI runs them inline on the event loop: a sync
# dependency costs a threadpool round trip per request.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine, read_only=request.method in SAFE_METHODS) as s:
        yield s


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _unauthorized(message: str = "未登录或登录已失效") -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def _claims(request: Request) -> tuple[TokenClaims, bool]:
    """The verified claims of the bearer token or session cookie (and whether it came by cookie)."""
    auth = request.headers.get("authorization", "")
    via_cookie = False
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized()
        token = token.strip()
    else:
        token = request.cookies.get(COOKIE_NAME, "")
        via_cookie = True
        if not token:
            raise _unauthorized()
    claims = read_token(request.app.state.secret_key, token)
    if claims is None:
        raise _unauthorized()
    return claims, via_cookie


def _check_csrf(request: Request, via_cookie: bool) -> None:
    if via_cookie and request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise ApiError(403, f"缺少 {CSRF_HEADER} 请求头（CSRF 防护）", code="csrf")


def authenticate(request: Request, session: Session) -> User:
    """The user behind the bearer token or the session cookie; 401 otherwise, 403 on CSRF."""
    claims, via_cookie = _claims(request)
    user = session.get(User, claims.user_id)
    if user is None or not user.active or user.token_version != claims.token_version:
        raise _unauthorized()
    _check_csrf(request, via_cookie)
    request.state.user = user
    return user


def require(route_name: str) -> Callable[..., User]:
    """Dependency: the authenticated user, if its role may call `route_name` (roles.ROLE_MATRIX)."""
    roles = ROLE_MATRIX[route_name]

    def dependency(request: Request, session: SessionDep) -> User:
        user = authenticate(request, session)
        if user.role not in roles:
            raise ApiError(403, "当前角色无权执行此操作", details={"role": user.role})
        return user

    dependency.route_name = route_name  # type: ignore[attr-defined]  # checked by the role tests
    dependency.__name__ = f"require_{route_name.replace('.', '_')}"
    return dependency


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user as plain values: for routes that run their own transaction."""

    id: int
    username: str
    role: str
    department_code: str | None


_users = User.__table__.c  # type: ignore[attr-defined]
_PRINCIPAL = select(
    _users.id, _users.username, _users.role, _users.department_code, _users.active
).where(_users.id == bindparam("id"), _users.token_version == bindparam("version"))


def require_principal(route_name: str) -> Callable[..., Principal]:
    """Like `require`, without holding a request session: the user row is read (one indexed
    select, read-only, so SQLite writers never wait on it) and checked on every request, so
    bumping token_version or deactivating a user takes effect at once. For routes that do all
    their database work in one threadpool call and one short transaction (tickets.create)."""
    roles = ROLE_MATRIX[route_name]

    def dependency(request: Request) -> Principal:
        claims, via_cookie = _claims(request)
        with readonly(request.app.state.engine).connect() as conn:
            row = conn.execute(
                _PRINCIPAL, {"id": claims.user_id, "version": claims.token_version}
            ).first()
        if row is None or not row.active:
            raise _unauthorized()
        _check_csrf(request, via_cookie)
        principal = Principal(row.id, row.username, row.role, row.department_code)
        request.state.user = principal
        if principal.role not in roles:
            raise ApiError(403, "当前角色无权执行此操作", details={"role": principal.role})
        return principal

    dependency.route_name = route_name  # type: ignore[attr-defined]  # checked by the role tests
    dependency.__name__ = f"require_{route_name.replace('.', '_')}"
    return dependency
