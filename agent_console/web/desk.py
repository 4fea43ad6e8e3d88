"""The dispatch desk (manual-dispatch queue, dispatching from the ticket page), walk-in intake at
the special-service window and the printable 受理告知书. Every action calls the same ticketing
service as the API route it mirrors, checked against that route's row in ROLE_MATRIX."""

from __future__ import annotations

from datetime import datetime
from math import ceil
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import col, select

from agent_console.access import visible_ticket
from agent_console.web.core import (
    PageNotFound,
    may,
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
    Notice,
    SubOrder,
    TicketIn,
    TicketingError,
    User,
    desk_overview,
    dispatch_queue,
    dispatch_to_departments,
    extension_requests,
    paper_text,
    reclassify,
    returns_awaiting,
    submit,
    utcnow,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25

# TicketIn's fields as the window form labels them (validation messages name the field)
FIELD_LABELS = {
    "content": "诉求内容",
    "title": "标题",
    "category": "事项类别",
    "urgency": "紧急程度",
    "submitter_name": "姓名",
    "submitter_phone": "联系电话",
    "enterprise_uscc": "统一社会信用代码",
    "enterprise_name": "企业名称",
    "departments": "承办部门",
    "channel_data": "窗口号",
}


@router.get("/dispatch", name="web.dispatch")
def dispatch_desk(request: Request, user: User = Depends(page_user("web.dispatch"))) -> Response:
    try:
        page = max(1, min(int(request.query_params.get("page", "1")), 100000))
    except ValueError:
        page = 1
    with session_scope(request.app.state.engine, read_only=True) as s:
        items, total = dispatch_queue(s, page, PAGE_SIZE)
        overview = desk_overview(s)
        extensions = extension_requests(s)
        awaiting = returns_awaiting(s)
        depts = departments(s)
        ids = [t.id for t in items]
        returned = (
            set(
                s.exec(
                    select(SubOrder.ticket_id).where(
                        col(SubOrder.ticket_id).in_(ids), SubOrder.status == "returned"
                    )
                )
            )
            if ids
            else set()
        )
    return render(
        request,
        "dispatch.html",
        {
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, ceil(total / PAGE_SIZE)),
            "depts": depts,
            "returned": returned,
            "extensions": extensions,
            "awaiting": awaiting,
            "overview": overview,
            "now": utcnow(),
        },
    )


def _local_datetime(settings: Any, value: str) -> datetime:
    """A datetime-local input (local time) as naive UTC."""
    dt = datetime.strptime(value, "%Y-%m-%dT%H:%M")
    return to_utc_naive(dt.replace(tzinfo=ZoneInfo(settings.timezone)))


@router.post("/tickets/{number}/dispatch", name="web.ticket_dispatch")
async def dispatch_ticket(
    number: str, request: Request, user: User = Depends(page_user("web.ticket"))
) -> Response:
    require_role(user, "tickets.dispatch")
    form = await request.form()
    codes = [str(c) for c in form.getlist("departments") if str(c).strip()]
    lead = str(form.get("lead") or "").strip() or None
    deadline_text = str(form.get("deadline") or "").strip()
    instructions = str(form.get("instructions") or "").strip() or None
    beyond = form.get("allow_beyond") == "1"
    typed = {
        "departments": codes,
        "deadline": deadline_text,
        "instructions": instructions or "",
        "allow_beyond": beyond,
        "lead": lead or "",
    }
    state = request.app.state
    error = None
    if not codes:
        error = "请至少选择一个承办部门"
    deadline = None
    if error is None and deadline_text:
        try:
            deadline = _local_datetime(state.settings, deadline_text)
        except ValueError:
            error = "办理时限格式不正确"
    if error is None:
        try:
            with session_scope(state.engine) as s:
                ticket = visible_ticket(s, user, number)
                dispatch_to_departments(
                    s,
                    state.settings,
                    ticket,
                    codes,
                    actor=user.username,
                    instructions=instructions,
                    deadline=deadline,
                    allow_beyond_ticket_deadline=beyond,
                    lead=lead,
                )
        except NotFound:
            raise PageNotFound(f"未找到工单：{number}") from None
        except TicketingError as e:
            error = e.message
    if error is None:
        return redirect(f"/tickets/{number}?done=dispatched", request)
    with session_scope(state.engine, read_only=True) as s:
        ctx = ticket_detail(s, state.settings, user, number)
    ctx.update(can_dispatch=True, dispatch_error=error, typed=typed)
    return render(request, "ticket.html", ctx, status=422)


@router.post("/tickets/{number}/reclassify", name="web.ticket_reclassify")
async def reclassify_ticket(
    number: str, request: Request, user: User = Depends(page_user("web.ticket"))
) -> Response:
    """更正类别/紧急程度 from the ticket page (the same rule as the API's tickets.reclassify)."""
    require_role(user, "tickets.reclassify")
    form = await request.form()
    typed = {k: str(form.get(k) or "").strip() for k in ("category", "urgency", "reason")}
    state = request.app.state
    error = None
    try:
        with session_scope(state.engine) as s:
            ticket = visible_ticket(s, user, number)
            if user.role == "agent" and ticket.created_by != user.username:
                error = "坐席只能更正本人受理的工单"
            else:
                reclassify(
                    s,
                    state.settings,
                    ticket.id or 0,  # loaded: id set
                    actor=user.username,
                    reason=typed["reason"],
                    category=typed["category"] or None,
                    urgency=typed["urgency"] or None,
                )
    except NotFound:
        raise PageNotFound(f"未找到工单：{number}") from None
    except TicketingError as e:
        error = e.message
    if error is None:
        return redirect(f"/tickets/{number}?done=reclassified", request)
    with session_scope(state.engine, read_only=True) as s:
        ctx = ticket_detail(s, state.settings, user, number)
    ctx.update(
        can_dispatch=may(user, "tickets.dispatch"),
        can_reclassify=True,
        reclassify_error=error,
        typed_grade=typed,
    )
    return render(request, "ticket.html", ctx, status=422)


def _window_context(request: Request, form: dict[str, Any], errors: dict[str, str]) -> dict:
    with session_scope(request.app.state.engine, read_only=True) as s:
        depts = departments(s)
    return {"form": form, "errors": errors, "depts": depts}


@router.get("/window", name="web.window")
def window_form(request: Request, user: User = Depends(page_user("web.window"))) -> Response:
    return render(request, "window.html", _window_context(request, {}, {}))


@router.post("/window", name="web.window_submit")
async def window_submit(
    request: Request, user: User = Depends(page_user("web.window"))
) -> Response:
    require_role(user, "tickets.create")
    raw = await request.form()
    keys = (
        "content", "title", "category", "urgency", "submitter_name", "submitter_phone",
        "enterprise_uscc", "enterprise_name", "window_no",
    )  # fmt: skip
    form: dict[str, Any] = {k: str(raw.get(k) or "").strip() for k in keys}
    form["departments"] = [str(c) for c in raw.getlist("departments") if str(c).strip()]
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        k: v for k, v in form.items() if v and k not in ("window_no", "departments")
    }
    data["channel"] = "window"
    if form["window_no"]:
        data["channel_data"] = {"window_no": form["window_no"]}
    if form["departments"]:
        data["departments"] = form["departments"]
    if not form["content"]:
        errors["content"] = "请填写诉求内容"
    ticket_in = None
    if not errors:
        try:
            ticket_in = TicketIn.model_validate(data)
        except ValidationError as e:
            for err in e.errors():
                field = str(err["loc"][0]) if err["loc"] else "content"
                errors[field if field in form else "content"] = (
                    f"{FIELD_LABELS.get(field, field)}填写有误"
                )
    if ticket_in is not None:
        state = request.app.state
        try:
            with session_scope(state.engine) as s:
                ticket = submit(s, ticket_in, settings=state.settings, actor=user.username)
                number = ticket.number
        except TicketingError as e:
            field = str(e.details.get("field") or "content")
            errors[field if field in form else "content"] = e.message
        else:
            return redirect(f"/tickets/{number}/notice?new=1", request)
    return render(request, "window.html", _window_context(request, form, errors), status=422)


@router.get("/tickets/{number}/notice", name="web.notice")
def notice_page(
    number: str, request: Request, user: User = Depends(page_user("web.notice"))
) -> Response:
    with session_scope(request.app.state.engine, read_only=True) as s:
        try:
            ticket = visible_ticket(s, user, number)
        except NotFound:
            raise PageNotFound(f"未找到工单：{number}") from None
        notice = s.exec(
            select(Notice)
            .where(Notice.ticket_id == ticket.id, Notice.kind == "acceptance")
            .order_by(col(Notice.id).desc())
        ).first()
    paper = paper_text(request.app.state.settings, notice, ticket) if notice else ""
    return render(
        request,
        "notice.html",
        {
            "t": ticket,
            "notice": notice,
            "paper": paper,
            "new": bool(request.query_params.get("new")),
        },
    )
