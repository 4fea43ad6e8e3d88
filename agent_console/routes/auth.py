"""Login / logout / me. Login answers the token and sets the same token as the session cookie."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sqlmodel import select

from agent_console.deps import SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import ApiError, responses
from agent_console.ratelimit import client_ip, login_limit
from agent_console.schemas import LoginIn, OkOut, TokenOut, UserOut
from agent_console.security import COOKIE_NAME, DUMMY_HASH, check_password, issue_token
from config.database import session_scope
from ticketing import User

router = APIRouter(prefix="/auth", tags=["auth"], route_class=TransactionRoute)
log = structlog.get_logger("agent_console.auth")


@router.post(
    "/login",
    name="auth.login",
    response_model=TokenOut,
    responses=responses(401, 422, 429),
)
async def login(
    body: LoginIn, request: Request, response: Response, settings: SettingsDep
) -> TokenOut:
    """No transaction is open while the password is checked (~170 ms of Argon2: on SQLite a write
    session would hold the process's writer lock all that time), and at most one check per core
    runs at once (security.check_password), so a burst of logins cannot starve other requests."""
    await run_in_threadpool(login_limit, request, body.username)
    user = await run_in_threadpool(_find_user, request.app.state.engine, body.username)
    ok = await check_password(user.password_hash if user else DUMMY_HASH, body.password)
    if not (user and ok and user.active):
        # the client address for whoever reads the log after a guessing run; phone numbers
        # typed as usernames are masked by the log pipeline (config.logging)
        log.warning("login_failed", username=body.username[:64], client=client_ip(request))
        raise ApiError(401, "用户名或密码错误", code="bad_credentials")
    ttl = settings.session_ttl_hours * 3600
    token, exp = issue_token(
        request.app.state.secret_key, user.id or 0, user.token_version, ttl, role=user.role
    )  # stored: id set
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    log.info("login", user_id=user.id, role=user.role)
    return TokenOut(
        access_token=token,
        expires_at=datetime.fromtimestamp(exp, UTC).replace(tzinfo=None),
        user=UserOut.model_validate(user),
    )


def _find_user(engine: Engine, username: str) -> User | None:
    with session_scope(engine, read_only=True) as s:
        return s.exec(select(User).where(User.username == username)).first()


@router.post(
    "/logout",
    name="auth.logout",
    response_model=OkOut,
    responses=responses(401, 403),
)
def logout(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("auth.logout")),
) -> OkOut:
    """Ends the session everywhere: bumps the user's token_version (every issued token is revoked)
    and clears the cookie."""
    own = session.get(User, user.id)  # `user` was read by the authentication's own session
    if own is not None:
        own.token_version += 1
    response.delete_cookie(
        COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=settings.cookie_secure
    )
    return OkOut()


@router.get("/me", name="auth.me", response_model=UserOut, responses=responses(401, 403))
def me(user: User = Depends(require("auth.me"))) -> UserOut:
    return UserOut.model_validate(user)
