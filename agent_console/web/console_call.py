"""The agent console during and after a call: edit the call's ticket, notes, blind transfer,
callback, wrap-up with a disposition code and the automatic return to ready.

Every rule is ticketing's or the bridge's: the ticket changes go through ticketing.reclassify (a
category/urgency correction needs a reason and is an event), ticketing.amend_ticket and
ticketing.add_note, the callback through ticketing.schedule_callback (the one callback store);
transfer and ready/pause are bridge commands (callcenter.commands) — this process never speaks
AMI. Each action answers with the pop re-rendered (htmx swaps #pop); a refusal is a 422 with a
Chinese message and what was typed kept.

Wrap-up (话后处理): when the agent's call ends (the SSE `ended` event), the browser posts /ended:
the agent is paused with reason `wrapup` so no call rings during the after-call work, and the
wrap-up's end time is kept in Redis for the page's countdown. Choosing the disposition makes the
agent ready again at once; otherwise the bridge does when the configured time is up (the pause
command carries `ready_after`: callcenter.commands, "Automatic ready"), whether or not the page
is still open; an agent who paused for another reason or went ready meanwhile is left as they
chose. The page's countdown is display only: at zero it posts /console/wrapup/auto, which just
ends the countdown and shows the agent's state.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlmodel import select

from agent_console.web.console import (
    console_config,
    pop_ctx,
    remember_call,
    status_ctx,
    to_bridge,
    wrapup_key,
)
from agent_console.web.core import (
    PageNotFound,
    local_input_to_utc,
    page_row_id,
    page_user,
    render,
    require_role,
)
from callcenter.commands import BridgeUnavailable, CommandFailed
from callcenter.live import agent_leg
from config.database import session_scope
from ticketing import (
    CALLBACK_OUTCOMES,
    Ticket,
    TicketingError,
    User,
    add_note,
    amend_ticket,
    callbacks_for,
    caller_phone,
    finish_callback,
    reclassify,
    record_event,
    schedule_callback,
    utcnow,
)

router = APIRouter(include_in_schema=False)
log = structlog.get_logger("agent_console.web.console_call")
WRAPUP_REASON = "wrapup"


def _ctx(request: Request, user: User, call_id: str) -> dict[str, Any]:
    if not call_id or len(call_id) > 64:
        raise PageNotFound()
    return pop_ctx(request, user, call_id)


def _pop(request: Request, ctx: dict[str, Any], status: int = 200) -> Response:
    return render(request, "_console_pop.html", ctx, status=status)


def _ticket_of(ctx: dict[str, Any]) -> Ticket:
    ticket = ctx.get("ticket")
    if ticket is None:
        raise PageNotFound("本次来电尚未登记工单")
    return ticket


# ---------------------------------------------------------------- the call's ticket
@router.post("/console/pop/{call_id}/edit", name="web.console_edit")
async def console_edit(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """Correct the call's ticket: category/urgency (with a reason), content, caller's name and
    the enterprise by 统一社会信用代码 — one transaction, all or nothing."""
    require_role(user, "tickets.create")
    form = await request.form()
    keys = ("category", "urgency", "reason", "content", "submitter_name", "enterprise_uscc",
            "enterprise_name")  # fmt: skip
    typed = {k: str(form.get(k) or "").strip() for k in keys}
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    ticket = _ticket_of(ctx)
    state = request.app.state

    def write() -> list[str]:
        with session_scope(state.engine) as s:
            grade = (typed["category"] or ticket.category, typed["urgency"] or ticket.urgency)
            changed = []
            if grade != (ticket.category, ticket.urgency):
                reclassify(
                    s,
                    state.settings,
                    ticket.id or 0,
                    actor=user.username,
                    reason=typed["reason"],
                    category=grade[0],
                    urgency=grade[1],
                )
                changed.append("grade")
            return changed + amend_ticket(
                s,
                ticket.id,
                actor=user.username,
                content=typed["content"] or None,
                submitter_name=typed["submitter_name"],
                uscc=typed["enterprise_uscc"],
                enterprise_name=typed["enterprise_name"] or None,
            )

    try:
        changed = await run_in_threadpool(write)
    except TicketingError as e:
        ctx.update(
            edit_form=typed, edit_errors={str(e.details.get("field") or "content"): e.message}
        )
        return _pop(request, ctx, 422)
    log.info("console_ticket_edited", call_id=call_id, number=ticket.number, fields=changed,
             user=user.username)  # fmt: skip
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    ctx["message"] = "工单已更新" if changed else "工单内容无变化"
    return _pop(request, ctx)


@router.post("/console/pop/{call_id}/note", name="web.console_note")
async def console_note(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    require_role(user, "tickets.create")
    text = str((await request.form()).get("note") or "")
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    ticket = _ticket_of(ctx)

    def write() -> None:
        with session_scope(request.app.state.engine) as s:
            add_note(s, ticket.id, text, actor=user.username)

    try:
        await run_in_threadpool(write)
    except TicketingError as e:
        ctx.update(note_text=text, note_error=e.message)
        return _pop(request, ctx, 422)
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    ctx["message"] = "备注已添加"
    return _pop(request, ctx)


# ---------------------------------------------------------------- transfer
@router.post("/console/pop/{call_id}/transfer", name="web.console_transfer")
async def console_transfer(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """Blind transfer of the caller to a queue or another agent's extension, by the bridge."""
    form = await request.form()
    ext, queue = str(form.get("ext") or "").strip(), str(form.get("queue") or "")
    kind, target = ("ext", ext) if ext else ("queue" if queue else "", queue)
    cfg = console_config(request.app.state.settings)
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    seat = ctx["seat"]
    ctx["transfer_form"] = {"ext": ext, "queue": queue}
    error = None
    leg = agent_leg(ctx["call"], seat.get("interface") or "") if seat else None
    if not kind:
        error = "请选择转接队列或输入分机号"
    elif kind == "queue" and target not in cfg["queues"]:
        error = "请选择要转接的队列"
    elif kind == "ext" and not re.match(cfg["transfer_extension_pattern"], target):
        error = "分机号无效：只能转接到坐席分机（如 8002）"
    elif kind == "ext" and target == seat.get("ext"):
        error = "不能转接给自己"
    elif ctx["ended"] or leg is None:
        error = "当前没有可转接的通话（通话已结束或未接通）"
    if error is None:
        try:
            await to_bridge(request, user, seat, "transfer", {"channel": leg, "exten": target})
        except (BridgeUnavailable, CommandFailed) as e:
            error = f"转接失败：{e}"
    if error is not None:
        ctx["transfer_error"] = error
        return _pop(request, ctx, 422)
    label = cfg["queues"][target] if kind == "queue" else f"分机 {target}"
    await run_in_threadpool(remember_call, request, user, ctx["call"], transferred_to=label)
    log.info("console_transfer", call_id=call_id, to=target, user=user.username)
    ctx["transfer_done"] = label
    ctx["message"] = f"已转接至{label}，请完成话后小结"
    return _pop(request, ctx)


# ---------------------------------------------------------------- callback
@router.post("/console/pop/{call_id}/callback", name="web.console_callback")
async def console_callback(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """预约回访: the caller is called back at the chosen (local) time; the agent's own task."""
    form = await request.form()
    typed = {"due": str(form.get("due") or ""), "note": str(form.get("note") or "")}
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    state = request.app.state
    ticket = ctx.get("ticket")
    error = None
    phone = caller_phone(ctx["call"].get("caller") or "")
    try:
        due = local_input_to_utc(state.settings, typed["due"])
    except ValueError:
        error, due = "请选择回访时间", utcnow()
    if phone is None:
        error = "来电号码未知或无效，无法预约回访"

    def write() -> None:
        with session_scope(state.engine) as s:
            schedule_callback(
                s,
                state.settings,
                phone=phone or "",
                call_id=call_id,
                due_at=due,
                note=typed["note"],
                actor=user.username,
                ticket_id=ticket.id if ticket is not None else None,
            )

    if error is None:
        try:
            await run_in_threadpool(write)
        except TicketingError as e:
            error = e.message
    if error is not None:
        ctx.update(callback_form=typed, callback_error=error)
        return _pop(request, ctx, 422)
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    ctx["message"] = "已预约回访"
    resp = _pop(request, ctx)
    resp.headers["HX-Trigger"] = "callbacks-changed"  # the side list reloads
    return resp


@router.get("/console/callbacks", name="web.console_callbacks")
def console_callbacks(request: Request, user: User = Depends(page_user("web.console"))) -> Response:
    """The agent's callbacks to make (own and the hotline's unassigned ones), due ones first."""
    return render(request, "_console_callbacks.html", _callbacks_ctx(request, user))


def _callbacks_ctx(request: Request, user: User, **extra: Any) -> dict[str, Any]:
    with session_scope(request.app.state.engine, read_only=True) as s:
        tasks = callbacks_for(s, user.username, limit=20)
        numbers = dict(
            s.exec(
                select(Ticket.id, Ticket.number).where(
                    Ticket.id.in_([t.ticket_id for t in tasks if t.ticket_id])  # type: ignore[union-attr]
                )
            ).all()
        )
    now = utcnow()
    return {
        "tasks": tasks,
        "numbers": numbers,
        "due": sum(1 for t in tasks if t.due_at <= now),
        "now": now,
        "outcomes": CALLBACK_OUTCOMES,
        "reasons": {"agent": "坐席预约", "abandoned": "放弃来电", "voicemail": "留言"},
        **extra,
    }


@router.post("/console/callbacks/{callback_id}/finish", name="web.console_callback_finish")
async def console_callback_finish(
    callback_id: int, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    page_row_id(callback_id, "未找到该回拨任务")
    outcome = str((await request.form()).get("outcome") or "")

    def write() -> None:
        with session_scope(request.app.state.engine) as s:
            finish_callback(s, callback_id, outcome, actor=user.username)

    try:
        await run_in_threadpool(write)
    except TicketingError as e:
        if e.status == 404:
            raise PageNotFound(e.message) from None
        ctx = await run_in_threadpool(_callbacks_ctx, request, user, error=e.message)
        return render(request, "_console_callbacks.html", ctx, status=422)
    ctx = await run_in_threadpool(
        _callbacks_ctx, request, user, message=f"回访已记录：{CALLBACK_OUTCOMES[outcome]}"
    )
    return render(request, "_console_callbacks.html", ctx)


# ---------------------------------------------------------------- wrap-up and auto-ready
@router.post("/console/pop/{call_id}/ended", name="web.console_ended")
async def console_ended(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """The agent's call ended: pause with reason `wrapup` until the disposition (or the
    configured time) — unless the disposition was already given during the call."""
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    # the agent's part is over even while the caller's channel lives on (a transfer, or the
    # bridge not yet told of the hang-up): the pop shows the call ended from now on
    await run_in_threadpool(remember_call, request, user, ctx["call"], agent_done=True)
    seat = ctx["seat"]
    cfg = ctx["cfg"]
    state = request.app.state
    if seat and not ctx["wrapped"]:
        until = time.time() + cfg["wrapup_seconds"]
        key = wrapup_key(state.settings, user.id or 0)
        state.redis.set(key, json.dumps({"call_id": call_id, "until": until}), ex=86400)
        if WRAPUP_REASON in cfg["pause_reasons"]:
            args: dict[str, Any] = {"interface": seat["interface"], "reason": WRAPUP_REASON}
            if cfg["wrapup_seconds"]:  # the bridge makes the agent ready when the time is up
                args["ready_after"] = cfg["wrapup_seconds"]
            try:
                await to_bridge(request, user, seat, "queue_pause", args)
            except (BridgeUnavailable, CommandFailed) as e:
                ctx["wrapup_error"] = f"未能置为话后处理：{e}"
    ctx = {**ctx, **await run_in_threadpool(_ctx, request, user, call_id)}
    return _pop(request, ctx)


@router.post("/console/pop/{call_id}/wrapup", name="web.console_wrapup")
async def console_wrapup(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """话后小结: the disposition code goes into the ticket's history (when the call has one);
    after the call, the agent is ready again at once (QueuePause false through the bridge)."""
    form = await request.form()
    code = str(form.get("disposition") or "")
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    cfg = ctx["cfg"]
    if code not in cfg["dispositions"]:
        ctx["wrapup_error"] = "请选择话后小结"
        return _pop(request, ctx, 422)
    ticket = ctx["ticket"]
    if ticket is not None:

        def write() -> None:
            with session_scope(request.app.state.engine) as s:
                record_event(s, ticket.id, user.username, "wrapup", disposition=code,
                             call_id=call_id)  # fmt: skip

        await run_in_threadpool(write)
    await run_in_threadpool(remember_call, request, user, ctx["call"], disposition=code)
    state = request.app.state
    key = wrapup_key(state.settings, user.id or 0)
    wrap = state.redis.get(key)
    ready = None
    if wrap and json.loads(wrap).get("call_id") == call_id:
        state.redis.delete(key)
        ready = await _ready(request, user, ctx["seat"])
    ctx = await run_in_threadpool(_ctx, request, user, call_id)
    ctx["wrapped"] = cfg["dispositions"][code]
    ctx["ready_result"] = ready
    return _pop(request, ctx)


async def _ready(request: Request, user: User, seat: dict[str, Any]) -> str:
    """QueuePause false for the agent; the line to show."""
    if not seat:
        return "未签入队列"
    try:
        await to_bridge(request, user, seat, "queue_unpause", {"interface": seat["interface"]})
    except (BridgeUnavailable, CommandFailed) as e:
        return f"未能恢复就绪：{e}"
    return "已就绪"


@router.post("/console/wrapup/auto", name="web.console_autoready")
async def console_autoready(
    request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """The page's countdown reached zero: end the countdown (when this wrap-up's time is indeed up
    by the server's clock) and show the agent's state. Display only: the bridge makes the agent
    ready (callcenter.commands.ready_due), page open or not (204: nothing to show)."""
    state = request.app.state
    key = wrapup_key(state.settings, user.id or 0)
    raw = state.redis.get(key)
    if not raw or not console_config(state.settings)["wrapup_seconds"]:
        return Response(status_code=204)
    if json.loads(raw)["until"] > time.time() + 1:  # a page clock running fast: not yet
        return Response(status_code=204)
    if not state.redis.delete(key):  # another tab took it first
        return Response(status_code=204)
    ctx = await run_in_threadpool(status_ctx, request, user, "话后处理时间到，已自动就绪")
    return render(request, "_console_status.html", ctx)
