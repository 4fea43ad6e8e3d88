"""Log in, log out, and `/` (the role's own home). Log in and out ARE the API's routes
(agent_console.routes.auth), called as functions: the same throttle, password check, token, cookie
and revocation; this module only turns their answers into pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from agent_console.errors import ApiError
from agent_console.routes import auth as api_auth
from agent_console.schemas import LoginIn
from agent_console.web.core import (
    LOGIN_CSRF_COOKIE,
    LoginRequired,
    current_user,
    home_for,
    login_csrf,
    page_user,
    redirect,
    render,
)
from config.database import session_scope
from config.secret_key import same_secret
from ticketing import User

router = APIRouter(include_in_schema=False)


def _safe_next(nxt: str | None) -> str | None:
    """Only a local path: never an open redirect to another site."""
    if nxt and nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt:
        return nxt
    return None


def _login_page(
    request: Request, *, error: str | None = None, username: str = "", status: int = 200
) -> Response:
    token, new = login_csrf(request)
    nxt = _safe_next(request.query_params.get("next") or None)
    info = "登录已过期，请重新登录" if request.query_params.get("expired") else None
    resp = render(
        request,
        "login.html",
        {"error": error, "info": info, "username": username, "login_csrf": token, "next": nxt},
        status=status,
    )
    if new:
        resp.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.app.state.settings.cookie_secure,
            path="/login",
        )
    return resp


@router.get("/login", name="web.login")
def login_form(request: Request) -> Response:
    try:
        user = current_user(request)
    except LoginRequired:
        return _login_page(request)
    return redirect(_safe_next(request.query_params.get("next")) or home_for(user.role))


LOGIN_SUBMIT = "/login"  # the form posts here (agent_console.middleware.WriteGate exempts it)


@router.post(LOGIN_SUBMIT, name="web.login_submit")
async def login_submit(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    login_token: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not same_secret(login_token, cookie):
        return _login_page(
            request, error="页面已过期，请重新输入后登录", username=username, status=403
        )
    username = username.strip()
    if not username or not password:
        return _login_page(request, error="请输入用户名和密码", username=username, status=422)
    try:
        body = LoginIn(username=username, password=password)
    except ValidationError:
        return _login_page(request, error="用户名或密码格式不正确", username=username, status=422)
    response = Response()
    state = request.app.state
    try:  # the API's login: the password is checked outside any transaction, throttled
        out = await api_auth.login(body, request, response, state.settings)
    except ApiError as e:
        return _login_page(request, error=e.message, username=username, status=e.status_code)
    nxt = _safe_next(request.query_params.get("next"))
    resp = redirect(nxt or home_for(out.user.role))
    for key, value in response.headers.items():
        if key.lower() == "set-cookie":
            resp.headers.append("set-cookie", value)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout", name="web.logout")
def logout(
    request: Request,
    user: User = Depends(page_user("web.home")),
) -> Response:
    response = Response()
    state = request.app.state
    with session_scope(state.engine) as session:
        api_auth.logout(response, session, state.settings, user)
    resp = redirect("/login", request)
    for key, value in response.headers.items():
        if key.lower() == "set-cookie":
            resp.headers.append("set-cookie", value)
    return resp


@router.get("/", name="web.home")
def home(request: Request) -> Response:
    try:
        user = current_user(request)
    except LoginRequired:
        return redirect("/login")
    return redirect(home_for(user.role))
