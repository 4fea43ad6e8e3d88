"""A department's inbox and the sub-order actions (签收 / 回复 / 退回 / 申请延期). The actions are
the API's suborders.* services, with the same row in ROLE_MATRIX and the same rule that a handler
acts on its own department's sub-orders only (404 otherwise)."""

from __future__ import annotations

from datetime import datetime
from math import ceil
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.access import handler_department, visible_suborder
from agent_console.web.core import (
    PageNotFound,
    page_row_id,
    page_user,
    redirect,
    render,
    require_role,
    to_utc_naive,
)
from agent_console.web.tickets import departments, ticket_detail
from config.database import session_scope
from ticketing import (
    NotFound,
    Ticket,
    TicketingError,
    User,
    accept,
    close_return,
    decide_extension,
    department_inbox,
    release_suborder,
    reply,
    request_extension,
    return_suborder,
    utcnow,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
OPEN = ["dispatched", "accepted", "extension_requested"]
VIEWS = {
    "open": ("待办", OPEN),
    "done": ("已办", ["replied", "returned", "released"]),
    "all": ("全部", None),
}


@router.get("/inbox", name="web.inbox")
def inbox_page(request: Request, user: User = Depends(page_user("web.inbox"))) -> Response:
    qp = request.query_params
    view = qp.get("view", "open")
    view = view if view in VIEWS else "open"
    try:
        page = max(1, min(int(qp.get("page", "1")), 100000))
    except ValueError:
        page = 1
    with session_scope(request.app.state.engine, read_only=True) as s:
        depts = departments(s)
        # admin may look at any department's inbox; a handler only at its own
        dept = handler_department(user) or qp.get("department") or next(iter(depts), "")
        if dept not in depts:
            raise PageNotFound("部门不存在")
        rows, total = department_inbox(s, dept, VIEWS[view][1], page, PAGE_SIZE)
    return render(
        request,
        "inbox.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, ceil(total / PAGE_SIZE)),
            "dept": dept,
            "depts": depts,
            "view": view,
            "views": VIEWS,
            "now": utcnow(),
        },
    )


ACTIONS = {
    "accept": ("suborders.accept", "已签收"),
    "reply": ("suborders.reply", "已回复"),
    "return": ("suborders.return", "已退回派单员"),
    "extension": ("suborders.extension", "已提交延期申请"),
    "decision": ("suborders.extension_decision", "已审批延期申请"),
    "close-return": ("suborders.close_return", "退回件已关闭"),
    "release": ("suborders.release", "已解除协办"),
}


@router.post("/suborders/{suborder_id}/{action}", name="web.suborder_action")
async def suborder_action(
    suborder_id: int, action: str, request: Request, user: User = Depends(page_user("web.ticket"))
) -> Response:
    if action not in ACTIONS:
        raise PageNotFound()
    page_row_id(suborder_id)
    require_role(user, ACTIONS[action][0])
    form = await request.form()
    typed = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    state = request.app.state
    dept = handler_department(user)
    error = None
    number = None
    try:
        with session_scope(state.engine) as s:
            so = visible_suborder(s, user, suborder_id)
            ticket = s.get(Ticket, so.ticket_id)
            assert ticket is not None  # a sub-order's ticket (foreign key)
            number = ticket.number
            kw: dict[str, Any] = {"actor": user.username, "department": dept}
            if action == "accept":
                accept(s, state.settings, suborder_id, **kw)
            elif action == "reply":
                reply(s, state.settings, suborder_id, text=typed.get("text", ""), **kw)
            elif action == "decision":
                decide_extension(
                    s, state.settings, suborder_id, actor=user.username,
                    approve=typed.get("approve") == "1", note=typed.get("note") or None,
                )  # fmt: skip
            elif action == "return":
                return_suborder(
                    s, state.settings, suborder_id, reason=typed.get("reason", ""), **kw
                )
            elif action == "close-return":
                close_return(s, state.settings, suborder_id, reason=typed.get("reason", ""), **kw)
            elif action == "release":
                release_suborder(
                    s, state.settings, suborder_id, reason=typed.get("reason", ""), **kw
                )
            else:
                amount, unit, until = _extension(state.settings, typed)
                request_extension(
                    s, state.settings, suborder_id, reason=typed.get("reason", ""),
                    amount=amount, unit=unit, until=until, **kw,
                )  # fmt: skip
    except NotFound:
        raise PageNotFound(f"子工单不存在：{suborder_id}") from None
    except (TicketingError, ValueError) as e:
        error = e.message if isinstance(e, TicketingError) else str(e)
        if number is None:
            raise PageNotFound() from None
    back = typed.get("back", "")
    if error is None:
        if back == "inbox":
            return redirect(f"/inbox?done={action}", request)
        return redirect(f"/tickets/{number}?done={action}", request)
    with session_scope(state.engine, read_only=True) as s:
        ctx = ticket_detail(s, state.settings, user, number)
    ctx.update(can_dispatch=False, action_error={"id": suborder_id, "action": action,
               "message": error}, typed=typed)  # fmt: skip
    return render(request, "ticket.html", ctx, status=422)


def _extension(settings: Any, typed: dict[str, str]) -> tuple[int | None, str | None, Any]:
    """The extension form: a number of working days / hours, or a date and time."""
    until_text = typed.get("until", "").strip()
    if until_text:
        try:
            dt = datetime.strptime(until_text, "%Y-%m-%dT%H:%M")
        except ValueError:
            raise ValueError("延期截止时间格式不正确") from None
        return None, None, to_utc_naive(dt.replace(tzinfo=ZoneInfo(settings.timezone)))
    amount_text = typed.get("amount", "").strip()
    if not amount_text:
        raise ValueError("请填写延期时长或延期截止时间")
    try:
        amount = int(amount_text)
    except ValueError:
        raise ValueError("延期时长必须是正整数") from None
    return amount, typed.get("unit") or "working_days", None
