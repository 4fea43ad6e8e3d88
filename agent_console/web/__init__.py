"""The web workspace: server-rendered pages (Jinja2 + htmx, vendored assets) over the API's own
sessions, role table and ticketing services.

Layout:
  core.py        templates, the page's user, CSRF, nav and homes per role, time display
  auth_pages.py  /login, /logout, / (redirect to the role's home)
  tickets.py     ticket page, search, enterprise file (一企一档)
  desk.py        dispatch desk, window intake, printable 受理告知书
  inbox.py       a department's inbox and its sub-order actions
  leader.py      the leader's read-only overview (ECharts)
  supervision.py a head's 督办 list, the leader's red board (专办), agents' 回访 tasks, manual 督办
  console.py     the agent console: screen-pop by SSE, queue state commands to the bridge
  admin.py       the administrator's home, holiday calendar and business hours
  admin_users.py, admin_departments.py   users and departments (role admin)
  portal.py      the public service portal (/portal, no login): submit, notice, follow, rate;
                 portal_access.py (CSRF, follow grants, SMS codes), portal_upload.py (attachments)
  kb*.py         knowledge pages, the console's suggestions and 直接答复, the public kb pages
  policy.py      enterprise profiles (edit, CSV/xlsx import), a policy's push panel, ticket ↔
                 policy links; portal_policy.py the pushed link's public page and the opt-out
  console_call.py  the console during/after a call: ticket edits, notes, transfer, callback,
                 wrap-up with disposition and auto-ready
  hotspots.py    高频事项分析: top matters, trends, rising topics, drill-down, xlsx (ECharts)
  wallboard.py   the supervisor wallboard (SSE from wallboard_hub.py), live control, reports
  assessment.py  the monthly department assessment: ranking, department, drill-down, appeals
  templates/     one base layout (base.html) that every page extends
  static/        app.css, app.js and vendor/ (htmx, ECharts, with their licences)

`install(app)` is the one line app.py needs.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import suppress
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_console.errors import ApiError
from agent_console.web import (
    admin,
    admin_departments,
    admin_users,
    assessment,
    attachments,
    auth_pages,
    console,
    console_call,
    desk,
    hotspots,
    inbox,
    kb,
    kb_console,
    leader,
    policy,
    portal,
    portal_kb,
    portal_policy,
    portal_upload,
    supervision,
    tickets,
    wallboard,
)
from agent_console.web.core import (
    HERE,
    LoginRequired,
    PageDenied,
    PageNotFound,
    Web,
    current_user,
    labels,
    login_url,
    make_env,
    redirect,
    render,
)

ROUTERS = (
    auth_pages.router,
    policy.router,  # proactive policy push (issue #12); before tickets: /enterprises/import
    tickets.router,
    desk.router,
    inbox.router,
    leader.router,
    console.router,
    admin.router,
    admin_users.router,
    admin_departments.router,
    attachments.router,
    kb.router,
    kb_console.router,
    portal_kb.router,  # knowledge base (issue #19)
    portal_policy.router,  # a pushed policy's public page and the opt-out (issue #12)
    console_call.router,
    wallboard.router,
    supervision.router,
    hotspots.router,  # 高频事项分析 (issue #12)
    assessment.router,  # §16–18 (issue #12)
)
# Public pages (no login, no role row): the service portal. Its own CSRF and access rules
# (agent_console.web.portal_access).
PUBLIC_ROUTERS = (portal.router, portal.legacy, assessment.public)
PORTAL_SUBMIT = portal.SUBMIT_PATH
LOGIN_SUBMIT = auth_pages.LOGIN_SUBMIT


def portal_max_body(settings: object) -> int:
    """The request body a portal submission may have (its attachment plus the form)."""
    return portal_upload.max_body(settings)


def install(app: FastAPI) -> None:
    """Serve the workspace from `app`: pages, static files and the pages' error answers."""
    app.state.web = Web(make_env(), labels(app.state.settings))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = getattr(app.state, "route_templates", None)
    for router in (*ROUTERS, *PUBLIC_ROUTERS):
        app.include_router(router)
        if templates is not None:  # access metrics label pages by template, not "unmatched"
            templates.update({id(r): r.path for r in router.routes if isinstance(r, APIRoute)})

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return redirect(login_url(request, exc.expired), request)

    @app.exception_handler(PageDenied)
    async def _denied(request: Request, exc: PageDenied) -> Response:
        msg = str(exc) or "无权访问"
        return render(request, "error.html", {"title": "无权访问", "message": msg}, status=403)

    @app.exception_handler(PageNotFound)
    async def _not_found(request: Request, exc: PageNotFound) -> Response:
        ctx = {"title": "未找到", "message": exc.message}
        if request.url.path.startswith("/portal"):  # a citizen: the portal's frame, no login
            return render(request, "portal/error.html", ctx, status=404)
        return render(request, "error.html", ctx, status=404)

    api_http = app.exception_handlers[StarletteHTTPException]

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        """A browser opening an address no page answers (a typo, a stale bookmark) gets a page
        in Chinese, not the API's JSON; API clients and everything else get the API's answer."""
        if exc.status_code == 404 and _browser_page(request):
            if request.url.path.startswith("/portal"):
                ctx = {"title": "页面不存在", "message": "您访问的页面不存在或已删除。"}
                return render(request, "portal/error.html", ctx, status=404)
            with suppress(LoginRequired, PageDenied, ApiError):  # signed in: frame and nav
                await run_in_threadpool(current_user, request)
            ctx = {"title": "页面不存在", "message": "您访问的页面不存在，请从首页重新进入。"}
            return render(request, "error.html", ctx, status=404)
        return await cast(Awaitable[Response], api_http(request, exc))  # errors.py's: async


def _browser_page(request: Request) -> bool:
    """A browser navigating to a page (GET, wants HTML), not an API call."""
    return (
        request.method in ("GET", "HEAD")
        and not request.url.path.startswith(("/api/", "/static/"))
        and "text/html" in request.headers.get("accept", "")
    )
