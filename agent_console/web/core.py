"""The web workspace's shell: templates, the signed-in user of a page, CSRF, navigation per role.

Sessions are the API's: the HttpOnly cookie set by /api/v1/auth/login (same token, same expiry,
same revocation by token_version), verified by agent_console.deps.authenticate. Pages are checked
against agent_console.roles.ROLE_MATRIX ("web.*" rows); actions against the API route doing the
same thing, so a role can never do on a page what the API refuses it.

CSRF: the API wants the header X-Requested-With on a cookie-authenticated unsafe request. A plain
HTML form cannot send a header, so every form carries a token instead, derived from the session
token (HMAC with the app's key: nothing stored, different for every session); htmx sends the same
token as the header X-CSRF-Token. A POST without a matching token is refused before anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from agent_console.deps import authenticate
from agent_console.errors import ApiError
from agent_console.roles import ROLE_LABELS, ROLE_MATRIX
from agent_console.security import COOKIE_NAME, CSRF_HEADER
from config.database import parse_row_id, session_scope
from config.loader import load_yaml
from config.secret_key import same_secret
from ticketing import ACTION_LABELS, SUBORDER_LABELS, TICKET_LABELS, User, cached_departments

HERE = Path(__file__).resolve().parent
CSRF_FIELD = "csrf_token"
CSRF_HTMX_HEADER = "X-CSRF-Token"
LOGIN_CSRF_COOKIE = "dxe_login_csrf"

WARNING_LABELS = {
    "none": "正常",
    "blue": "蓝色预警",
    "yellow": "黄色预警",
    "red": "红色预警",
    "overdue": "已超期",
}
RATING_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
EVENT_LABELS = {
    "created": "受理",
    "classified": "分类分级",
    "auto_dispatched": "自动派单",
    "dispatched": "派单",
    "manual_dispatch_required": "转人工派单",
    "suborder_dispatched": "派发子工单",
    "dispatch_added": "追加派单",
    "handoff_sent": "推送外部系统",
    "handoff_failed": "推送外部系统失败",
    "warning": "预警变化",
    "transcript_attached": "录音转写完成",
    "wrapup": "话后小结",
    "amended": "修改工单",
    "note": "备注",
    "callback_promised": "预约回访",
    "callback_rescheduled": "回访改期",
    "callback_done": "已回访",
    "callback_failed": "回访未联系上",
    "callback_cancelled": "回访取消",
    "suborder_accepted": "部门签收",
    "suborder_replied": "部门回复",
    "suborder_returned": "部门退回",
    "extension_requested": "申请延期",
    "extension_approved": "延期获批",
    "extension_rejected": "延期未获批",
    "returned_to_dispatcher": "退回派单员",
    "resolved": "办结",
    "closed": "关闭",
    "reopened": "重启",
    "evaluated": "评价",
    "notice_created": "生成受理告知书",
    "notice_confirmed": "告知书已确认",
    "resolution_held": "退回待处理，暂缓办结",
    "return_closed": "退回件已关闭",
    "suborder_released": "解除协办",
    "reclassified": "更正类别/紧急程度",
    "duplicate_linked": "关联重复件",
    "escalation_remind": "催办",
    "escalation_supervise": "督办",
    "escalation_special": "专办（报市领导）",
    "escalation_sms_skipped": "督办短信未发出",
    "supervision_acknowledged": "督办已确认",
    "coordinator_assigned": "指定协调人",
    "special_closed": "专办办结",
    "redo": "不满意重办",
    "revisit_task_created": "生成回访任务",
    "revisit_done": "回访完成",
    "resolution_summary_awaited": "待派单员审定办理结果摘要",
    "resolution_summary_approved": "办理结果摘要已告知诉求人",
    "assessment_appeal_filed": "考核申诉",
    "assessment_appeal_decided": "考核申诉审核",
    "submitter_told": "短信告知诉求人",
    "direct_answered": "直接答复办结",
    **ACTION_LABELS,
}
# What the submitter was told (a submitter_told event's `kind`) and the notices a ticket keeps.
TOLD_LABELS = {
    "resolved": "办结结果",
    "extension": "延期",
    "reopened": "重新办理",
}
# Who did it, when not a person: the machine actors of the ticket history.
ACTOR_LABELS = {
    "system": "系统",
    "public": "群众（网上提交）",
    "asr": "语音识别",
    "twilio": "语音线路",
    "ivr:twilio": "语音导航",
}
NOTICE_LABELS = {
    "acceptance": "受理告知书",
    "resolution": "办结告知（评价链接）",
    "direct_answer": "直接答复告知（评价链接）",
    "eval_reminder": "评价提醒",
}

# The nav per role: (page row in ROLE_MATRIX, url, label). Only rows the role may open are shown.
NAV: list[tuple[str, str, str]] = [
    ("web.console", "/console", "坐席工作台"),
    ("web.dispatch", "/dispatch", "派单台"),
    ("web.window", "/window", "窗口受理"),
    ("web.inbox", "/inbox", "部门待办"),
    ("web.leader", "/leader", "运行总览"),
    ("web.wallboard", "/wallboard", "实时监控"),
    ("web.redboard", "/redboard", "红色预警"),
    ("web.assessment", "/assessment", "考核"),
    ("web.supervision", "/supervision", "督办"),
    ("web.revisits", "/revisits", "回访"),
    ("web.hotspots", "/hotspots", "高频事项"),
    ("web.search", "/search", "工单查询"),
    ("web.enterprise", "/enterprises", "一企一档"),
    ("web.admin", "/admin", "系统管理"),
    ("web.kb", "/kb", "知识库"),
]
# Each role's landing page: the first page of its own work.
HOMES = {
    "agent": "/console",
    "dispatcher": "/dispatch",
    "supervisor": "/dispatch",
    "handler": "/inbox",
    "leader": "/leader",
    "admin": "/admin",
}


def home_for(role: str) -> str:
    return HOMES.get(role, "/search")


class LoginRequired(Exception):
    """No valid session: pages redirect to /login (htmx: HX-Redirect)."""

    def __init__(self, expired: bool) -> None:
        self.expired = expired


class PageDenied(Exception):
    """The role may not open this page or do this action (403 page)."""


class PageNotFound(Exception):
    """Nothing there, or not for this user (404 page, the same as the API's 404)."""

    def __init__(self, message: str = "页面不存在") -> None:
        self.message = message


def page_row_id(raw: object, message: str = "页面不存在") -> int:
    """The row id a page's URL or form names (config.database.parse_row_id), else the 404 page."""
    n = parse_row_id(raw)
    if n is None:
        raise PageNotFound(message)
    return n


@dataclass
class Web:
    """What every template needs, built once per app (install)."""

    env: Environment
    labels: dict[str, dict[str, str]]


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def labels(settings: Any) -> dict[str, dict[str, str]]:
    cats = load_yaml(settings, "categories.yaml")
    out = {k: dict(cats.get(k) or {}) for k in ("categories", "urgencies", "channels")}
    out.update(
        status=dict(TICKET_LABELS),
        substatus=dict(SUBORDER_LABELS),
        warning=WARNING_LABELS,
        rating=RATING_LABELS,
        event=EVENT_LABELS,
        told=TOLD_LABELS,
        actor=ACTOR_LABELS,
        notice=NOTICE_LABELS,
        role=ROLE_LABELS,
    )
    return out


# ---------------------------------------------------------------- the user of a page
def _session_token(request: Request) -> str:
    return request.cookies.get(COOKIE_NAME, "")


def csrf_token(request: Request) -> str:
    """The form token of this session (HMAC of the session token with the app's key)."""
    token = _session_token(request)
    key = request.app.state.secret_key
    return hmac.new(key, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()[:40]


def check_csrf(request: Request, sent: str | None) -> None:
    if not same_secret(sent, csrf_token(request)):
        raise PageDenied("页面已过期或来源不明（CSRF 校验失败），请刷新页面后重试")


def login_csrf(request: Request) -> tuple[str, bool]:
    """Double-submit token of the login form (no session yet): (token, newly made)."""
    have = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if len(have) == 43:
        return have, False
    return secrets.token_urlsafe(32), True


def _authenticate(request: Request) -> User:
    """deps.authenticate, the API's one session check (it reads the user on a read-only session of
    its own). For a POST whose form token was checked (check_csrf), that token stands in for the
    API's X-Requested-With header."""
    if request.method not in ("GET", "HEAD") and not request.headers.get(CSRF_HEADER):
        request = Request({**request.scope, "method": "GET"}, request.receive)
    return authenticate(request)


def current_user(request: Request) -> User:
    """The signed-in user of this request, or LoginRequired."""
    try:
        user = _authenticate(request)
    except ApiError as e:
        if e.status_code == 401:
            raise LoginRequired(expired=bool(_session_token(request))) from None
        if e.status_code == 403:  # the API's CSRF refusal
            raise PageDenied(e.message) from None
        raise
    request.state.user = user
    return user


def may(user: User, row: str) -> bool:
    return user.role in ROLE_MATRIX[row]


def page_user(row: str) -> Callable[[Request], Awaitable[User]]:
    """Dependency for a page or a page's action: the signed-in user whose role has `row` in
    ROLE_MATRIX. A POST must carry this session's CSRF token (form field or htmx header) first."""

    async def dependency(request: Request) -> User:
        if request.method not in ("GET", "HEAD"):
            sent: Any = request.headers.get(CSRF_HTMX_HEADER)
            if not sent and "form" in request.headers.get("content-type", ""):
                sent = (await request.form()).get(CSRF_FIELD)
            check_csrf(request, sent if isinstance(sent, str) else None)
        user = await run_in_threadpool(current_user, request)
        if not may(user, row):
            raise PageDenied("当前角色无权访问此页面")
        return user

    dependency.page_row = row  # type: ignore[attr-defined]  # walked by tests/web
    return dependency


def require_role(user: User, row: str) -> None:
    """An action on a page: the role row of the API route it mirrors (e.g. tickets.dispatch)."""
    if not may(user, row):
        raise PageDenied("当前角色无权执行此操作")


# ---------------------------------------------------------------- time
def to_local(settings: Any, dt: datetime) -> datetime:
    """Aware local time (settings.timezone) of a stored naive-UTC datetime, for display."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(ZoneInfo(settings.timezone))


def to_utc_naive(dt: datetime) -> datetime:
    """The stored form (naive UTC) of an aware datetime; a naive one is already UTC."""
    return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)


def local_input_to_utc(settings: Any, value: str) -> datetime:
    """A datetime-local form value (local time) as naive UTC; ValueError when malformed."""
    dt = datetime.strptime(value, "%Y-%m-%dT%H:%M")
    return to_utc_naive(dt.replace(tzinfo=ZoneInfo(settings.timezone)))


# ---------------------------------------------------------------- rendering
def local(request: Request, dt: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if dt is None:
        return "—"
    return to_local(request.app.state.settings, dt).strftime(fmt)


def time_left(request: Request, dt: datetime | None, now: datetime) -> str:
    """剩余 / 超期 as days, hours and minutes."""
    if dt is None:
        return "—"
    secs = int((dt - now).total_seconds())
    overdue = secs < 0
    secs = abs(secs)
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    text = f"{d}天{h}小时" if d else (f"{h}小时{m}分" if h else f"{m}分钟")
    return ("超期 " if overdue else "剩余 ") + text


def render(
    request: Request,
    template: str,
    ctx: dict[str, Any] | None = None,
    *,
    status: int = 200,
    user: User | None = None,
) -> HTMLResponse:
    web: Web = request.app.state.web
    user = user or getattr(request.state, "user", None)
    nav = [(url, label) for row, url, label in NAV if user is not None and may(user, row)]
    context = {
        "request": request,
        "user": user,
        "nav": nav,
        "path": request.url.path,
        "L": web.labels,
        "csrf": csrf_token(request) if user is not None else "",
        "local": lambda dt, fmt="%Y-%m-%d %H:%M": local(request, dt, fmt),
        "role_label": ROLE_LABELS,
        "dept_label": _department_label(request, user),
        "may": (lambda row: user is not None and may(user, row)),
        **(ctx or {}),
    }
    html = web.env.get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _department_label(request: Request, user: User | None) -> str:
    """The header's department: its name (a handler reads 市场监督管理局, not SCJG), from the
    per-process department snapshot (no query but its change-stamp check, at most once a second)."""
    code = user.department_code if user is not None else None
    if not code:
        return ""
    try:
        with session_scope(request.app.state.engine, read_only=True) as s:
            dept = cached_departments(s, [code]).get(code)
    except Exception:  # the database away: the page (maybe the one saying so) still renders
        return code
    return dept.name if dept is not None else code


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; media-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def redirect(url: str, request: Request | None = None) -> Response:
    """303 to url; for an htmx request, HX-Redirect (a full page load) instead."""
    if request is not None and request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def login_url(request: Request, expired: bool) -> str:
    nxt = request.url.path
    if request.url.query:
        nxt += "?" + request.url.query
    url = "/login?next=" + quote(nxt, safe="")
    return url + ("&expired=1" if expired else "")
