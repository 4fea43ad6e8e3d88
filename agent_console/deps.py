"""Request-scoped dependencies: one DB transaction per request, and the authenticated user.

The session dependency has scope="function"; a route served by TransactionRoute (every router of
the API) commits it, or rolls it back, at the end of the route's own thread hop, BEFORE the
response is sent, so a client never sees 200 for something that failed to commit, and an error
anywhere in the request leaves nothing half-written. GET/HEAD use read-only sessions (SQLite: a
deferred transaction that never queues behind writers).

Why one hop: a write transaction (on SQLite, the process's writer lock; on PostgreSQL, row locks
and a pooled connection) must never wait for a thread that its own waiters may occupy. It used to
begin in the authentication dependency (session.get(User) on the request's write session) and end
in the session's exit, with the route and the response validation as further thread-pool hops in
between: 40 requests waiting for the lock took every worker thread, the holder never got one back,
and the whole process stalled for 30 s. Now the route's transaction begins and ends inside one
thread (`TransactionRoute`), and the user is read there too, first thing in that transaction
(`require` gives the route a Bearer, `bearer_user` checks it: active, token version, role): one
thread hop and one session per request. Writes run on a limiter of their own (`WRITE_THREADS`) so
that waiting writers never take the threads reads and /healthz need, and the response is
serialised on the event loop. Routes outside TransactionRoute (and the web pages) read the user
on a read-only session of its own (`authenticate`), in a thread hop of its own; except recording
playback, which writes its audit row in a transaction of its own and checks its user there
(`require_bearer`, `user_in_session`).

The hot write route (tickets.create) instead takes `require_token`: the token's signature, expiry
and CSRF are checked here, and its user (active, token version, role) by the intake pipeline
(agent_console.intake_batcher) when it prepares the request's batch, one SELECT for the whole
batch — still on every request, with no cache in between.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar, get_args, get_origin

import anyio
from anyio.lowlevel import RunVar
from fastapi import Depends, Path, Request
from fastapi.routing import APIRoute
from redis import Redis
from sqlalchemy.engine import Engine
from sqlmodel import Session

from agent_console.errors import ApiError
from agent_console.roles import ROLE_MATRIX
from agent_console.security import COOKIE_NAME, CSRF_HEADER, TokenClaims, read_token
from config.database import MAX_ROW_ID, readonly, session_scope
from config.settings import Settings
from ticketing import User, bind_sla_settings

# A row id in a URL: 1..MAX_ROW_ID, else a 422 before any query (config.database.MAX_ROW_ID)
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Trivial lookups are `async def` so FastAPI runs them inline on the event loop: a sync
# dependency costs a threadpool round trip per request.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session, created on the event loop (no I/O until its first statement, which
    a TransactionRoute runs in the route's thread and ends there). A route that did not end its
    transaction (none should) has it committed or rolled back here, in a thread that waits for no
    pool's capacity (FastAPI's own rule for dependency exits)."""
    bind = request.app.state.engine
    s = Session(readonly(bind) if request.method in SAFE_METHODS else bind, expire_on_commit=False)
    bind_sla_settings(s, request.app.state.settings)  # state changes re-evaluate §13 clocks
    try:
        yield s
        if s.in_transaction():
            await anyio.to_thread.run_sync(s.commit, limiter=anyio.CapacityLimiter(1))
    except BaseException:
        if s.in_transaction():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(s.rollback, limiter=anyio.CapacityLimiter(1))
        raise
    finally:
        s.close()


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


class HasRole(Protocol):
    @property
    def role(self) -> str: ...


def check_role(user: HasRole, roles: Collection[str]) -> None:
    """403 unless the user's role is one the route allows (roles.ROLE_MATRIX)."""
    if user.role not in roles:
        raise ApiError(403, "当前角色无权执行此操作", details={"role": user.role})


def authenticate(request: Request) -> User:
    """The user behind the bearer token or the session cookie; 401 otherwise, 403 on CSRF.

    Read on a short read-only session of its own, never the request's (write) session: the
    returned User is detached, a route that changes it loads it again in its own session."""
    claims, via_cookie = _claims(request)
    with session_scope(request.app.state.engine, read_only=True) as s:
        user = check_user(s.get(User, claims.user_id), claims.token_version)
    _check_csrf(request, via_cookie)
    request.state.user = user
    return user


def require(route_name: str) -> Callable[..., Awaitable[User]]:
    """Dependency: the authenticated user, if its role may call `route_name` (roles.ROLE_MATRIX).

    On a route that reads its user in its own transaction (TransactionRoute, see one_hop) this
    checks the token and CSRF only, on the event loop, and gives a Bearer that the route's thread
    turns into the User on the request's session before the endpoint runs: one thread hop and one
    session per request instead of two of each."""
    roles = ROLE_MATRIX[route_name]
    frozen = frozenset(roles)

    async def dependency(request: Request) -> User:
        if getattr(request.scope.get("route"), "user_in_transaction", False):
            claims, via_cookie = _claims(request)
            if claims.role is not None:  # else a token from before roles were in it: below
                _check_csrf(request, via_cookie)
                # refused here as before (a 403 comes before any 422 of the body); the role is
                # the token's, checked against the user's own by bearer_user
                check_role(TokenRole(claims.role), roles)
                return Bearer(claims.user_id, claims.token_version, frozen)  # type: ignore[return-value]
        user = await anyio.to_thread.run_sync(authenticate, request, limiter=auth_limiter())
        check_role(user, roles)
        return user

    dependency.route_name = route_name  # type: ignore[attr-defined]  # checked by the role tests
    dependency.__name__ = f"require_{route_name.replace('.', '_')}"
    return dependency


def require_bearer(route_name: str) -> Callable[..., Awaitable[User | Bearer]]:
    """`require` for a route that is not a TransactionRoute but reads its user in its own write
    transaction all the same, with `user_in_session` (recording playback, which writes its audit
    row): the token, CSRF and the token's role checked here, the user there; one session and one
    thread hop per request instead of two of each."""
    roles = ROLE_MATRIX[route_name]
    frozen = frozenset(roles)

    async def dependency(request: Request) -> User | Bearer:
        claims, via_cookie = _claims(request)
        if claims.role is None:  # a token from before roles were in it: the separate check
            user = await anyio.to_thread.run_sync(authenticate, request, limiter=auth_limiter())
            check_role(user, roles)
            return user
        _check_csrf(request, via_cookie)
        check_role(TokenRole(claims.role), roles)
        return Bearer(claims.user_id, claims.token_version, frozen)

    dependency.route_name = route_name  # type: ignore[attr-defined]  # checked by the role tests
    dependency.__name__ = f"require_{route_name.replace('.', '_')}"
    return dependency


def user_in_session(session: Session, user: User | Bearer) -> User:
    """What `require_bearer` gave, as the checked User read on `session` (see bearer_user)."""
    return bearer_user(session, user) if isinstance(user, Bearer) else user


@dataclass(frozen=True, slots=True)
class TokenRole:
    """The role a token names (security.TokenClaims.role), for check_role."""

    role: str


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


# ------------------------------------------------------------------ one thread hop per transaction
# Threads reading users for authentication at once: more runnable Python threads than that only
# take the GIL from the event loop (on two cores, /healthz waited behind 40 of them).
AUTH_THREADS = 2
_auth_limiter: RunVar[anyio.CapacityLimiter] = RunVar("dxe_auth_limiter")


def auth_limiter() -> anyio.CapacityLimiter:
    try:
        return _auth_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(AUTH_THREADS)
        _auth_limiter.set(limiter)
        return limiter


# Concurrent write routes per process, by database. On SQLite they queue on the writer lock
# anyway: two in flight keep it busy while the rest wait on the event loop (no thread, no
# connection held), and fewer runnable threads leave the event loop its share of the GIL
# (bench/concurrency.py: 500 at once took ~5 s with 2, ~10 s with 8). PostgreSQL writes in
# parallel, and a thread waiting on its round trips holds no GIL; but a write is mostly Python
# (~5.5 ms of CPU, ~2 ms of round trips), so a few threads keep the GIL busy and more only take
# turns at it: bursts of 200, write p99 1.47-1.76 s with 4 (four runs) against 1.74-2.02 s
# with 8 (four runs), machine load 0.5-3.
WRITE_THREADS = {"sqlite": 2}
WRITE_THREADS_DEFAULT = 4
_write_limiters: RunVar[dict[str, anyio.CapacityLimiter]] = RunVar("dxe_write_limiters")


def write_limiter(dialect: str) -> anyio.CapacityLimiter:
    """The event loop's limiter for write routes on `dialect` (not the default thread pool's)."""
    try:
        limiters = _write_limiters.get()
    except LookupError:
        limiters = {}
        _write_limiters.set(limiters)
    if dialect not in limiters:
        limiters[dialect] = anyio.CapacityLimiter(WRITE_THREADS.get(dialect, WRITE_THREADS_DEFAULT))
    return limiters[dialect]


def _session_params(endpoint: Callable[..., Any]) -> list[str]:
    """Names of the endpoint's parameters that receive the request's Session."""
    try:
        sig = inspect.signature(endpoint, eval_str=True)
    except NameError:  # pragma: no cover - a TYPE_CHECKING-only annotation
        sig = inspect.signature(endpoint)
    names = []
    for p in sig.parameters.values():
        ann = p.annotation
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
        if ann is Session or ann == "SessionDep":
            names.append(p.name)
    return names


def _dialect(session: Session) -> str:
    bind = session.get_bind()
    return bind.dialect.name


def bearer_user(session: Session, bearer: Bearer) -> User:
    """The Bearer's user, read on `session`: 401 unless active and of the token's version, 403
    unless its role may call the route (what `authenticate` and `require` check)."""
    user = check_user(session.get(User, bearer.user_id), bearer.token_version)
    check_role(user, bearer.roles)
    return user


def _run_in_one_transaction(
    endpoint: Callable[..., Any], kwargs: dict, names: list[str], users: list[str]
) -> Any:
    sessions = [kwargs[n] for n in names]
    try:
        for name in users:  # require(): the user, checked in this transaction
            if isinstance(kwargs[name], Bearer):
                kwargs[name] = bearer_user(sessions[0], kwargs[name])
        result = endpoint(**kwargs)
        for s in sessions:
            s.commit()
    except BaseException:
        for s in sessions:
            s.rollback()
        raise
    return result


def _user_params(endpoint: Callable[..., Any]) -> list[str]:
    """Names of the endpoint's parameters that take `require(...)` directly."""
    return [
        p.name
        for p in inspect.signature(endpoint).parameters.values()
        if hasattr(getattr(p.default, "dependency", None), "route_name")
    ]


def one_hop(endpoint: Callable[..., Any], *, write: bool) -> Callable[..., Any]:
    """A sync endpoint that takes the request's Session, run as: begin, read and check the user
    (its `require` parameters), route, commit (or roll back) in ONE worker thread; writes on
    `write_limiter()`. Others are returned unchanged."""
    if inspect.iscoroutinefunction(endpoint) or getattr(endpoint, "_one_hop", False):
        return endpoint
    names = _session_params(endpoint)
    if not names:
        return endpoint
    users = _user_params(endpoint)

    @functools.wraps(endpoint)
    async def wrapper(**kwargs: Any) -> Any:
        call = functools.partial(_run_in_one_transaction, endpoint, kwargs, names, users)
        limiter = write_limiter(_dialect(kwargs[names[0]])) if write else None
        return await anyio.to_thread.run_sync(call, limiter=limiter)

    wrapper._one_hop = True  # type: ignore[attr-defined]
    wrapper._user_params = users  # type: ignore[attr-defined]
    return wrapper


class TransactionRoute(APIRoute):
    """The API's route class: sync endpoints with a session run through `one_hop`.

    `user_in_transaction`: the endpoint's `require` parameters are read in its one hop (see
    `require`); only where nothing else receives that user (a sub-dependency would get the
    Bearer)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = kwargs.get("methods") or {"GET"}
        write = any(m.upper() not in SAFE_METHODS for m in methods)
        wrapped = one_hop(endpoint, write=write)
        super().__init__(path, wrapped, **kwargs)
        users = getattr(wrapped, "_user_params", [])
        direct = {d.name for d in self.dependant.dependencies if d.name in users}
        nested = [
            d
            for top in self.dependant.dependencies
            for d in _walk(top)
            if hasattr(d.call, "route_name") and (d is not top or top.name not in users)
        ]
        self.user_in_transaction = bool(direct) and not nested


def _walk(dependant: Any) -> Iterator[Any]:
    """A dependant and every sub-dependant below it."""
    yield dependant
    for d in dependant.dependencies:
        yield from _walk(d)
