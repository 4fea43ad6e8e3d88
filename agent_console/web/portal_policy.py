"""The public side of the policy push (no login): the page a pushed SMS links to, and the opt-out.

/portal/p/{token} shows the policy (its knowledge article) and logs the open (every open a row,
ticketing.policy_push.record_open); when the SMS was a digest of several policies it lists them
instead, each opening /portal/p/{token}/{article_id}, where that policy's open is logged.
/portal/p/{token}/optout asks, then records that the enterprise no longer wants pushes. The token
is single-purpose (one SMS), stored as a digest.
A policy withdrawn or expired since the push says so instead of showing stale text.
CSRF for the opt-out form: the portal's double-submit cookie (as portal_kb's 问题已解决).
Rate-limited in the public reads' bucket.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from agent_console.ratelimit import public_read_limit
from agent_console.web.core import PageNotFound, render
from agent_console.web.kb import KIND_LABELS
from agent_console.web.portal_access import csrf_for, csrf_ok, set_csrf_cookie
from agent_console.web.tickets import departments
from config.database import session_scope
from ticketing import (
    Enterprise,
    KbArticle,
    in_force,
    local_today,
    message_pushes,
    opt_out,
    push_by_token,
    record_open,
)

router = APIRouter(include_in_schema=False, dependencies=[Depends(public_read_limit)])
OPEN_ROUTES = frozenset(
    {
        "web.portal_policy",
        "web.portal_policy_item",
        "web.portal_policy_optout",
        "web.portal_policy_optout_save",
    }
)


def _no_user(request: Request) -> None:
    request.state.user = None


def _show(request: Request, token: str, article_id: int | None) -> Response:
    """The page of a pushed link: the policy (its open logged), or the list of a digest's."""
    _no_user(request)
    state = request.app.state
    with session_scope(state.engine) as s:
        push = push_by_token(s, token)
        if push is None:
            raise PageNotFound("链接无效或已过期")
        pushes = message_pushes(s, push)
        if article_id is not None:
            found = next((p for p in pushes if p.article_id == article_id), None)
            if found is None:
                raise PageNotFound("链接无效或已过期")
            push = found
        ent = s.get(Enterprise, push.enterprise_id)
        ctx: dict[str, Any] = {
            "token": token,
            "opted_out": bool(ent and ent.push_opt_out),
            "kinds": KIND_LABELS,
            "depts": departments(s),
        }
        if len(pushes) > 1 and article_id is None:
            arts = [s.get(KbArticle, p.article_id) for p in pushes]
            ctx["items"] = [a for a in arts if a is not None]
            return render(request, "portal/policy_list.html", ctx)
        record_open(s, push)
        a = s.get(KbArticle, push.article_id)
        ctx["a"] = a
        ctx["live"] = a is not None and in_force(a, local_today(state.settings))
        ctx["back"] = len(pushes) > 1
    return render(request, "portal/policy.html", ctx)


@router.get("/portal/p/{token}", name="web.portal_policy")
def portal_policy(token: str, request: Request) -> Response:
    """A pushed policy (the open logged), or the list of a digest SMS's policies."""
    return _show(request, token, None)


@router.get("/portal/p/{token}/{article_id:int}", name="web.portal_policy_item")
def portal_policy_item(token: str, article_id: int, request: Request) -> Response:
    """One policy of a digest SMS: its open is logged, as for a policy's own link."""
    return _show(request, token, article_id)


@router.get("/portal/p/{token}/optout", name="web.portal_policy_optout")
def portal_policy_optout(token: str, request: Request) -> Response:
    _no_user(request)
    with session_scope(request.app.state.engine, read_only=True) as s:
        push = push_by_token(s, token)
        if push is None:
            raise PageNotFound("链接无效或已过期")
        ent = s.get(Enterprise, push.enterprise_id)
    csrf, fresh = csrf_for(request)
    resp = render(
        request,
        "portal/policy_optout.html",
        {
            "token": token,
            "csrf": csrf,
            "done": bool(ent and ent.push_opt_out),
            "name": ent.name if ent else "",
        },
    )
    if fresh:
        set_csrf_cookie(request, resp, csrf)
    return resp


@router.post("/portal/p/{token}/optout", name="web.portal_policy_optout_save")
async def portal_policy_optout_save(token: str, request: Request) -> Response:
    """The enterprise opts out: no policy is pushed to it any more (pending ones are dropped)."""
    _no_user(request)
    form = await request.form()
    sent = str(form.get("csrf") or "")
    if not csrf_ok(request, sent):
        return HTMLResponse("页面已过期，请刷新后重试", status_code=403)
    with session_scope(request.app.state.engine) as s:
        push = push_by_token(s, token)
        if push is None:
            raise PageNotFound("链接无效或已过期")
        ent = opt_out(s, push.enterprise_id)
        name = ent.name
    return render(
        request,
        "portal/policy_optout.html",
        {"token": token, "csrf": "", "done": True, "name": name},
    )
