"""Request-scoped dependencies: one DB transaction per request, and the authenticated user.

The session dependency has scope="function": it commits (or rolls back) when the route returns,
BEFORE the response is sent, so a client never sees 200 for something that failed to commit, and
an error anywhere in the request leaves nothing half-written. GET/HEAD use read-only sessions
(SQLite: a deferred transaction that never queues behind writers).

The hot write route (tickets.create) instead takes `require_token`: the token's signature, expiry
and CSRF are checked here, and its user (active, token version, role) by the intake pipeline
(agent_console.intake_batcher) when it prepares the request's batch, one SELECT for the whole
batch — still on every request, with no cache in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from redis import Redis
from sqlalchemy.engine import Engine
from sqlmodel import Session

from agent_console.errors import ApiError
from agent_console.roles import ROLE_MATRIX
from agent_console.security import COOKIE_NAME, CSRF_HEADER, TokenClaims, read_token
from config.database import session_scope
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


def unauthorized(message: str = "未登录或登录已失效") -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def _claims(request: Request) -> tuple[TokenClaims, bool]:
    """The verified claims of the bearer token or session cookie (and whether it came by cookie)."""
    auth = request.headers.get("authorization", "")
    via_cookie = False
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized()
        token = token.strip()
    else:
        token = request.cookies.get(COOKIE_NAME, "")
        via_cookie = True
        if not token:
            raise unauthorized()
    claims = read_token(request.app.state.secret_key, token)
    if claims is None:
        raise unauthorized()
    return claims, via_cookie


def _check_csrf(request: Request, via_cookie: bool) -> None:
    if via_cookie and request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise ApiError(403, f"缺少 {CSRF_HEADER} 请求头（CSRF 防护）", code="csrf")


class UserLike(Protocol):
    """What the user check reads: a User, or a row of its columns (the intake batcher's read)."""

    @property
    def active(self) -> bool: ...
    @property
    def token_version(self) -> int: ...
    @property
    def role(self) -> str: ...


_U = TypeVar("_U", bound=UserLike)


def check_user(user: _U | None, token_version: int) -> _U:
    """The token's user; 401 unless it exists, is active and the token is of its current version."""
    if user is None or not user.active or user.token_version != token_version:
        raise unauthorized()
    return user


def check_role(user: UserLike, roles: Collection[str]) -> None:
    """403 unless the user's role is one the route allows (roles.ROLE_MATRIX)."""
    if user.role not in roles:
        raise ApiError(403, "当前角色无权执行此操作", details={"role": user.role})


def authenticate(request: Request, session: Session) -> User:
    """The user behind the bearer token or the session cookie; 401 otherwise, 403 on CSRF."""
    claims, via_cookie = _claims(request)
    user = check_user(session.get(User, claims.user_id), claims.token_version)
    _check_csrf(request, via_cookie)
    request.state.user = user
    return user


def require(route_name: str) -> Callable[..., User]:
    """Dependency: the authenticated user, if its role may call `route_name` (roles.ROLE_MATRIX)."""
    roles = ROLE_MATRIX[route_name]

    def dependency(request: Request, session: SessionDep) -> User:
        user = authenticate(request, session)
        check_role(user, roles)
        return user

    dependency.route_name = route_name  # type: ignore[attr-defined]  # checked by the role tests
    dependency.__name__ = f"require_{route_name.replace('.', '_')}"
    return dependency


@dataclass(frozen=True, slots=True)
class Bearer:
    """A well-signed, unexpired token for one route; its user is not checked yet (see the module
    docstring). `roles` are the roles the route allows."""

    user_id: int
    token_version: int
    roles: frozenset[str]


def require_token(route_name: str) -> Callable[..., Awaitable[Bearer]]:
    """Like `require`, without touching the database: for routes whose user check happens in
    their own transaction (tickets.create). 401 for a missing/bad/expired token, 403 on CSRF."""
    roles = frozenset(ROLE_MATRIX[route_name])

    async def dependency(request: Request) -> Bearer:
        claims, via_cookie = _claims(request)
        _check_csrf(request, via_cookie)
        return Bearer(claims.user_id, claims.token_version, roles)

    dependency.route_name = route_name  # type: ignore[attr-defined]  # checked by the role tests
    dependency.__name__ = f"require_{route_name.replace('.', '_')}"
    return dependency
