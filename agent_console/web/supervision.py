"""§14–15 pages: a head's 督办 list (acknowledge), the leader's red board (专办, coordinator),
the agents' 回访 tasks (outcome), and the ticket page's manual 督办 button. Each action is checked
against the API row doing the same thing (escalations.acknowledge, tickets.supervise, …)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.access import handler_department, visible_ticket
from agent_console.web.core import (
    PageNotFound,
    local_input_to_utc,
    page_row_id,
    page_user,
    redirect,
    render,
    require_role,
)
from config.database import session_scope
from ticketing import (
    ESCALATION_STATUS_LABELS,
    KIND_LABELS,
    LEVEL_LABELS,
    REVISIT_OUTCOMES,
    STEP_LABELS,
    NotFound,
    PermissionDenied,
    TicketingError,
    User,
    acknowledge,
    all_departments,
    assign_coordinator,
    close_special,
    escalations,
    get_escalation,
    record_revisit,
    revisit_tasks,
    supervise,
    utcnow,
)

router = APIRouter(include_in_schema=False)


def _depts(s: Any) -> dict[str, str]:
    return {d.code: d.name for d in all_departments(s)}


def _labels() -> dict[str, Any]:
    return {
        "kinds": {str(k): v for k, v in KIND_LABELS.items()},
        "esc_status": ESCALATION_STATUS_LABELS,
        "levels": LEVEL_LABELS,
        "steps": STEP_LABELS,
    }


@router.get("/supervision", name="web.supervision")
def supervision_page(
    request: Request, user: User = Depends(page_user("web.supervision"))
) -> Response:
    state = request.app.state
    view = request.query_params.get("view", "open")
    status = view if view in ("open", "acknowledged") else "open"
    with session_scope(state.engine, read_only=True) as s:
        rows = escalations(s, kind="supervise", status=status, department=handler_department(user))
        depts = _depts(s)
    return render(
        request,
        "supervision.html",
        {
            "rows": rows,
            "view": status,
            "depts": depts,
            "now": utcnow(),
            "can_ack": _can_ack(user),
            **_labels(),
        },
    )


def _can_ack(user: User) -> bool:
    """Whether the page offers the acknowledgement (the rule itself: escalation.acknowledge)."""
    return handler_department(user) is None or user.is_head


def _ack_error(request: Request, user: User, message: str, status: int = 422) -> Response:
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        rows = escalations(s, kind="supervise", status="open", department=handler_department(user))
        depts = _depts(s)
    ctx = {
        "rows": rows,
        "view": "open",
        "depts": depts,
        "now": utcnow(),
        "error": message,
        "can_ack": _can_ack(user),
    }
    return render(request, "supervision.html", {**ctx, **_labels()}, status=status)


@router.post("/supervision/{escalation_id}/acknowledge", name="web.supervision_ack")
async def supervision_ack(
    escalation_id: int, request: Request, user: User = Depends(page_user("web.supervision"))
) -> Response:
    require_role(user, "escalations.acknowledge")
    page_row_id(escalation_id)
    form = await request.form()
    note = str(form.get("note") or "")
    try:
        with session_scope(request.app.state.engine) as s:
            acknowledge(
                s,
                escalation_id,
                actor=user.username,
                department=handler_department(user),
                head=user.is_head,
                note=note,
            )
    except NotFound:
        raise PageNotFound("督办记录不存在") from None
    except PermissionDenied as e:  # a handler who is not the department's head
        return _ack_error(request, user, e.message, status=403)
    except TicketingError as e:
        return _ack_error(request, user, e.message)
    return redirect("/supervision?done=ack", request)


@router.get("/redboard", name="web.redboard")
def red_board(request: Request, user: User = Depends(page_user("web.redboard"))) -> Response:
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        rows = escalations(s, kind="special", status="open")
        depts = _depts(s)
    return render(
        request,
        "redboard.html",
        {"rows": rows, "depts": depts, "now": utcnow(), **_labels()},
    )


@router.post("/redboard/{escalation_id}/{action}", name="web.redboard_action")
async def red_board_action(
    escalation_id: int,
    action: str,
    request: Request,
    user: User = Depends(page_user("web.redboard")),
) -> Response:
    if action not in ("coordinator", "close"):
        raise PageNotFound()
    page_row_id(escalation_id)
    require_role(user, f"escalations.{action}")
    form = await request.form()
    error = None
    try:
        with session_scope(request.app.state.engine) as s:
            get_escalation(s, escalation_id)
            if action == "coordinator":
                assign_coordinator(
                    s,
                    escalation_id,
                    actor=user.username,
                    coordinator=str(form.get("coordinator") or ""),
                )
            else:
                close_special(s, escalation_id, actor=user.username)
    except NotFound:
        raise PageNotFound("专办记录不存在") from None
    except TicketingError as e:
        error = e.message
    if error is None:
        return redirect(f"/redboard?done={action}", request)
    with session_scope(request.app.state.engine, read_only=True) as s:
        rows = escalations(s, kind="special", status="open")
        depts = _depts(s)
    ctx = {"rows": rows, "depts": depts, "now": utcnow(), "error": error}
    return render(request, "redboard.html", {**ctx, **_labels()}, status=422)


@router.get("/revisits", name="web.revisits")
def revisits_page(request: Request, user: User = Depends(page_user("web.revisits"))) -> Response:
    view = "done" if request.query_params.get("view") == "done" else "open"
    with session_scope(request.app.state.engine, read_only=True) as s:
        rows = revisit_tasks(s, status=view)
    return render(
        request,
        "revisits.html",
        {"rows": rows, "view": view, "outcomes": REVISIT_OUTCOMES, "now": utcnow()},
    )


@router.post("/revisits/{task_id}/outcome", name="web.revisit_outcome")
async def revisit_outcome(
    task_id: int, request: Request, user: User = Depends(page_user("web.revisits"))
) -> Response:
    require_role(user, "revisits.outcome")
    page_row_id(task_id)
    form = await request.form()
    try:
        with session_scope(request.app.state.engine) as s:
            record_revisit(
                s,
                task_id,
                actor=user.username,
                outcome=str(form.get("outcome") or ""),
                note=str(form.get("note") or ""),
            )
    except NotFound:
        raise PageNotFound("回访任务不存在") from None
    except TicketingError as e:
        with session_scope(request.app.state.engine, read_only=True) as s:
            rows = revisit_tasks(s, status="open")
        ctx = {"rows": rows, "view": "open", "outcomes": REVISIT_OUTCOMES, "now": utcnow()}
        return render(request, "revisits.html", {**ctx, "error": e.message}, status=422)
    return redirect("/revisits?done=1", request)


@router.post("/tickets/{number}/supervise", name="web.ticket_supervise")
async def ticket_supervise(
    number: str, request: Request, user: User = Depends(page_user("web.ticket"))
) -> Response:
    """The ticket page's 督办 button (tickets.supervise: supervisors and leaders)."""
    require_role(user, "tickets.supervise")
    form = await request.form()
    state = request.app.state
    raw_due = str(form.get("due_at") or "").strip()
    try:
        due = local_input_to_utc(state.settings, raw_due) if raw_due else None
    except ValueError:
        return redirect(f"/tickets/{number}?supervise_error=due", request)
    try:
        with session_scope(state.engine) as s:
            ticket = visible_ticket(s, user, number)
            supervise(
                s,
                state.settings,
                ticket,
                actor=user.username,
                note=str(form.get("note") or ""),
                due_at=due,
            )
    except NotFound:
        raise PageNotFound(f"未找到工单：{number}") from None
    except TicketingError as e:
        field = str(e.details.get("field", "note"))
        return redirect(f"/tickets/{number}?supervise_error={field}", request)
    return redirect(f"/tickets/{number}?done=supervise", request)
