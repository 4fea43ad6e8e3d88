"""Login / logout / me. Login answers the token and sets the same token as the session cookie."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, Depends, Request, Response
from sqlmodel import select

from agent_console.deps import SessionDep, SettingsDep, require
from agent_console.errors import ApiError, responses
from agent_console.ratelimit import login_limit
from agent_console.schemas import LoginIn, OkOut, TokenOut, UserOut
from agent_console.security import COOKIE_NAME, DUMMY_HASH, issue_token, verify_password
from ticketing import User

router = APIRouter(prefix="/auth", tags=["auth"])
log = structlog.get_logger("agent_console.auth")


@router.post(
    "/login",
    name="auth.login",
    response_model=TokenOut,
    responses=responses(401, 422, 429),
)
def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> TokenOut:
    login_limit(request, body.username)
    user = session.exec(select(User).where(User.username == body.username)).first()
    ok = verify_password(user.password_hash if user else DUMMY_HASH, body.password)
    if not (user and ok and user.active):
        log.info("login_failed", username=body.username)
        raise ApiError(401, "用户名或密码错误", code="bad_credentials")
    ttl = settings.session_ttl_hours * 3600
    token, exp = issue_token(
        request.app.state.secret_key, user.id or 0, user.token_version, ttl
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
    user.token_version += 1
    session.add(user)
    response.delete_cookie(
        COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=settings.cookie_secure
    )
    return OkOut()


@router.get("/me", name="auth.me", response_model=UserOut, responses=responses(401, 403))
def me(user: User = Depends(require("auth.me"))) -> UserOut:
    return UserOut.model_validate(user)
