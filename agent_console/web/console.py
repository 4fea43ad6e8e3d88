"""The agent console (role agent): queue log-in / ready / pause through the bridge, the screen-pop
when the phone rings, filing the call's ticket during the call, wrap-up, today's own figures.

Live state comes from the bridge through Redis (callcenter.live: snapshot + pub/sub deltas) and
reaches the browser by SSE (/console/events); the pop itself is a server-rendered fragment
(/console/pop/{call_id}) that htmx swaps in. Queue commands go to the bridge of the agent's PBX
over Redis (callcenter.commands) — this process never speaks AMI — and the bridge's answer, or a
clear error when none comes, is shown. The agent's phone (extension) is chosen at queue log-in and
kept in Redis per user for the shift (hot-desking), so no schema change is needed.

What the agent does with the call (edit its ticket, notes, transfer, callback, wrap-up and
auto-ready) lives in console_call.py; this module keeps the page, the seat, the live stream and the
pop. The pop of a call that has ended is still served from the console's memory of it (Redis, per
agent, CALL_MEMORY_SECONDS): the wrap-up happens after the caller has hung up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlmodel import func, select

from agent_console.web.core import PageNotFound, page_user, render, require_role, to_local
from agent_console.web.leader import local_midnight
from callcenter.commands import BridgeUnavailable, CommandFailed, send_command
from callcenter.live import link_ticket, load_snapshot, subscribe
from config.database import session_scope
from config.loader import load_yaml
from config.redis import redis_url
from ticketing import (
    CallbackTask,
    Department,
    Enterprise,
    Ticket,
    TicketFilter,
    TicketIn,
    TicketingError,
    User,
    caller_history,
    history,
    is_digits,
    list_tickets,
    submit,
    utcnow,
)

router = APIRouter(include_in_schema=False)
log = structlog.get_logger("agent_console.web.console")
KEEPALIVE_SECONDS = 15.0
SHIFT_SECONDS = 16 * 3600
CALL_MEMORY_SECONDS = 4 * 3600


def console_config(settings: Any) -> dict[str, Any]:
    cfg = load_yaml(settings, "console.yaml")
    return {
        "queues": dict(cfg.get("queues") or {}),
        "interface_template": str(cfg.get("interface_template") or "PJSIP/{ext}"),
        "pause_reasons": dict(cfg.get("pause_reasons") or {}),
        "dispositions": dict(cfg.get("dispositions") or {}),
        "wrapup_seconds": int(cfg.get("wrapup_seconds") or 0),
        "transfer_extension_pattern": str(cfg.get("transfer_extension_pattern") or r"^80[0-9]{2}$"),
    }


def _seat_key(settings: Any, user_id: int) -> str:
    return f"{settings.redis_namespace}:console:seat:{user_id}"


def _call_key(settings: Any, user_id: int, call_id: str) -> str:
    return f"{settings.redis_namespace}:console:call:{user_id}:{call_id}"


def remember_call(request: Request, user: User, call: dict[str, Any], **extra: Any) -> None:
    """Keep what the pop showed of a call (and what the agent did: disposition, transfer) for the
    wrap-up after it ends. Merged into what was kept before."""
    r, settings = request.app.state.redis, request.app.state.settings
    key = _call_key(settings, user.id or 0, str(call.get("call_id")))
    old = r.get(key)
    kept = {**(json.loads(old) if old else {}), **call, **extra}
    r.set(key, json.dumps(kept, ensure_ascii=False), ex=CALL_MEMORY_SECONDS)


def recalled_call(request: Request, user: User, call_id: str) -> dict[str, Any] | None:
    raw = request.app.state.redis.get(_call_key(request.app.state.settings, user.id or 0, call_id))
    return json.loads(raw) if raw else None


def wrapup_key(settings: Any, user_id: int) -> str:
    """The agent's wrap-up in progress: {"call_id", "until"} (console_call.py)."""
    return f"{settings.redis_namespace}:console:wrapup:{user_id}"


async def to_bridge(
    request: Request, user: User, seat: dict[str, Any], command: str, args: dict[str, Any]
) -> dict[str, Any]:
    """One command to the bridge of the agent's PBX; its reply, or BridgeUnavailable /
    CommandFailed carrying the Chinese message to show."""
    return await run_in_threadpool(
        send_command,
        request.app.state.redis,
        request.app.state.settings,
        seat["server"],
        command,
        args,
        actor=user.username,
    )


def get_seat(request: Request, user: User) -> dict[str, Any]:
    """The agent's phone for this shift: {"ext", "interface", "server", "queues"} or {}."""
    raw = request.app.state.redis.get(_seat_key(request.app.state.settings, user.id or 0))  # loaded
    return json.loads(raw) if raw else {}


def _agent_live(snapshot: dict[str, Any], seat: dict[str, Any]) -> dict[str, Any] | None:
    iface = seat.get("interface")
    return next((a for a in snapshot.get("agents", []) if a.get("interface") == iface), None)


def _figures(request: Request, user: User, agent: dict[str, Any] | None) -> dict[str, Any]:
    settings = request.app.state.settings
    since = local_midnight(settings, utcnow())
    with session_scope(request.app.state.engine, read_only=True) as s:
        filed = s.exec(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.created_by == user.username, Ticket.created_at >= since)
        ).one()
    return {"calls_taken": (agent or {}).get("calls_taken", 0), "tickets_filed": int(filed)}


def status_ctx(
    request: Request, user: User, message: str | None = None, error: str | None = None
) -> dict[str, Any]:
    cfg = console_config(request.app.state.settings)
    seat = get_seat(request, user)
    try:
        snapshot = load_snapshot(request.app.state.redis, request.app.state.settings)
    except Exception:  # Redis away: the page still opens, saying so
        snapshot, error = {}, error or "实时状态服务暂不可用"
    agent = _agent_live(snapshot, seat) if seat else None
    servers = [s.name for s in request.app.state.settings.asterisk]
    servers += [s for s in snapshot.get("servers", {}) if s not in servers]
    return {
        "cfg": cfg,
        "seat": seat,
        "agent": agent,
        "servers": servers,
        "figures": _figures(request, user, agent),
        "message": message,
        "error": error,
        "state_labels": STATE_LABELS,
        # `callcenter demo` marks its replaying PBX: the console says the calls are simulated
        "simulation": "、".join(
            name for name, meta in snapshot.get("servers", {}).items() if meta.get("simulation")
        ),
    }


STATE_LABELS = {
    "logged-out": "未签入",
    "ready": "就绪",
    "on-call": "通话中",
    "wrap-up": "话后处理",
    "paused": "小休",
}


@router.get("/console", name="web.console")
def console_page(request: Request, user: User = Depends(page_user("web.console"))) -> Response:
    return render(request, "console.html", status_ctx(request, user))


@router.post("/console/queue", name="web.console_queue")
async def console_queue(
    request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """Log in to queues, ready, pause (with a reason code), log out: each sent to the bridge."""
    form = await request.form()
    action = str(form.get("action") or "")
    settings = request.app.state.settings
    cfg = console_config(settings)
    seat = get_seat(request, user)
    error = None
    commands: list[tuple[str, dict[str, Any]]] = []
    if action == "login":
        ext = str(form.get("ext") or "").strip()
        queues = [str(q) for q in form.getlist("queues") if str(q) in cfg["queues"]]
        server = str(form.get("server") or "").strip()
        if not is_digits(ext) or not 2 <= len(ext) <= 8:
            error = "分机号应为 2-8 位数字"
        elif not queues:
            error = "请至少选择一个队列"
        else:
            iface = cfg["interface_template"].format(ext=ext)
            seat = {"ext": ext, "interface": iface, "server": server, "queues": queues}
            name = user.display_name or user.username
            commands = [
                ("queue_add", {"queue": q, "interface": iface, "member_name": name}) for q in queues
            ]
    elif not seat:
        error = "请先签入队列"
    elif action == "ready":
        commands = [("queue_unpause", {"interface": seat["interface"]})]
    elif action == "pause":
        reason = str(form.get("reason") or "")
        if reason not in cfg["pause_reasons"]:
            error = "请选择小休原因"
        else:
            commands = [("queue_pause", {"interface": seat["interface"], "reason": reason})]
    elif action == "logout":
        commands = [
            ("queue_remove", {"queue": q, "interface": seat["interface"]}) for q in seat["queues"]
        ]
    else:
        error = "未知操作"
    message = None
    if error is None:
        try:
            for command, args in commands:
                await to_bridge(request, user, seat, command, args)
        except (BridgeUnavailable, CommandFailed) as e:
            error = str(e)
        else:
            key = _seat_key(settings, user.id or 0)  # a signed-in user: id set
            if action != "login":  # the agent's own choice ends any automatic wrap-up
                request.app.state.redis.delete(wrapup_key(settings, user.id or 0))
            if action == "logout":
                request.app.state.redis.delete(key)
            elif action == "login":
                request.app.state.redis.set(key, json.dumps(seat), ex=SHIFT_SECONDS)
            message = {"login": "已签入队列", "ready": "已就绪", "pause": "已小休",
                       "logout": "已签出"}[action]  # fmt: skip
    ctx = status_ctx(request, user, message, error)
    if action == "login" and error:
        ctx["typed"] = {"ext": str(form.get("ext") or ""), "queues": form.getlist("queues")}
    return render(request, "_console_status.html", ctx, status=200 if error is None else 422)


# ---------------------------------------------------------------- live: SSE and the pop
async def _events(request: Request, interface: str) -> AsyncIterator[str]:
    settings = request.app.state.settings
    client = aioredis.from_url(redis_url(settings))
    popped: set[str] = set()
    talking = ""  # the call the agent is connected to, until it ends
    yield "retry: 2000\n\n"
    try:
        deltas = subscribe(client, settings).__aiter__()
        nxt: asyncio.Task | None = None
        while not await request.is_disconnected():
            nxt = nxt or asyncio.ensure_future(deltas.__anext__())
            done, _ = await asyncio.wait({nxt}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield ": keep-alive\n\n"
                continue
            delta, nxt = nxt.result(), None
            agent = (delta.get("agents") or {}).get(interface)
            if not agent:
                continue
            yield f"event: agent\ndata: {json.dumps({'state': agent.get('state')})}\n\n"
            call_id = agent.get("ringing_call") or agent.get("call_id")
            if call_id and call_id not in popped:
                popped.add(call_id)
                yield f"event: pop\ndata: {json.dumps({'call_id': call_id})}\n\n"
            if agent.get("call_id"):
                talking = agent["call_id"]
            elif talking:  # the agent's call is over (hung up or transferred): wrap-up begins
                yield f"event: ended\ndata: {json.dumps({'call_id': talking})}\n\n"
                talking = ""
    finally:
        if nxt is not None:
            nxt.cancel()
        await client.aclose()


@router.get("/console/events", name="web.console_events")
async def console_events(
    request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    seat = await run_in_threadpool(get_seat, request, user)
    if not seat:
        return Response(status_code=204)  # EventSource stops; the page reconnects after log-in
    return StreamingResponse(
        _events(request, seat["interface"]),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _live_call(request: Request, call_id: str) -> dict[str, Any] | None:
    snapshot = load_snapshot(request.app.state.redis, request.app.state.settings)
    return next((c for c in snapshot.get("calls", []) if c.get("call_id") == call_id), None)


def _linked_ticket(request: Request, call_id: str, call: dict[str, Any] | None) -> str | None:
    if call and call.get("ticket_number"):
        return call["ticket_number"]
    links = f"{request.app.state.settings.redis_namespace}:live:ticket-links"
    raw = request.app.state.redis.hget(links, call_id)
    return raw.decode() if isinstance(raw, bytes) else raw


def pop_ctx(request: Request, user: User, call_id: str) -> dict[str, Any]:
    """Everything the pop shows: the live call (or, once it ended, the console's memory of it),
    the caller's history, the enterprise file and the call's ticket."""
    live = _live_call(request, call_id)
    kept = recalled_call(request, user, call_id)
    if live is not None:
        remember_call(request, user, live)
    elif kept is None:
        raise PageNotFound("该通话已结束或不存在")
    call = {**(kept or {}), **(live or {})}
    over = live is None or bool((kept or {}).get("agent_done"))  # hung up, or passed on
    if over:
        call["status"] = "ended"
    phone = call.get("caller") or ""
    history: list[Ticket] = []
    enterprise = None
    ticket = None
    number = _linked_ticket(request, call_id, call) or call.get("filed_ticket")
    with session_scope(request.app.state.engine, read_only=True) as s:
        if phone:
            try:
                history = caller_history(s, phone, 10)
            except TicketingError:  # not a number the phone rules accept (e.g. anonymous)
                history = []
        ent_id = next((t.enterprise_id for t in history if t.enterprise_id), None)
        enterprise = s.get(Enterprise, ent_id) if ent_id is not None else None
        if enterprise is not None:
            ent_tickets, ent_total = list_tickets(s, TicketFilter(uscc=enterprise.uscc), 1, 5)
        else:
            ent_tickets, ent_total = [], 0
        if number:
            ticket = s.exec(select(Ticket).where(Ticket.number == number)).first()
        extras = _ticket_extras(s, ticket, call_id)
    wrap = request.app.state.redis.get(wrapup_key(request.app.state.settings, user.id or 0))
    wrap = json.loads(wrap) if wrap else {}
    cfg = console_config(request.app.state.settings)
    return {
        **extras,
        "wrapup_left": (
            max(0, int(wrap["until"] - time.time())) if wrap.get("call_id") == call_id else None
        ),
        "wrapped": cfg["dispositions"].get(call.get("disposition") or ""),
        "call": call,
        "history": history,
        "enterprise": enterprise,
        "ent_tickets": ent_tickets,
        "ent_total": ent_total,
        "ticket": ticket,
        "cfg": cfg,
        "now": utcnow(),
        "form": {"category": call.get("category") or ""},
        "errors": {},
        "ended": over,
        # the callback form's first suggestion: two hours from now, local time
        "callback_default": to_local(
            request.app.state.settings, utcnow() + timedelta(hours=2)
        ).strftime("%Y-%m-%dT%H:%M"),
        "seat": get_seat(request, user),
    }


def _ticket_extras(s: Any, ticket: Ticket | None, call_id: str) -> dict[str, Any]:
    """The call's ticket as the console edits it: the suggested department's name, the notes, the
    callback promised on this call."""
    dept_name = None
    notes: list[Any] = []
    if ticket is not None and ticket.id is not None:
        if ticket.suggested_department:
            dept = s.exec(
                select(Department).where(Department.code == ticket.suggested_department)
            ).first()
            dept_name = dept.name if dept else ticket.suggested_department
        notes = [e for e in history(s, ticket.id) if e.action == "note"]
    callback = s.exec(
        select(CallbackTask).where(CallbackTask.call_id == call_id, CallbackTask.reason == "agent")
    ).first()
    ent = None
    if ticket is not None and ticket.enterprise_id is not None:
        ent = s.get(Enterprise, ticket.enterprise_id)
    return {
        "suggested_name": dept_name,
        "notes": notes,
        "callback": callback,
        "ticket_enterprise": ent,
    }


@router.get("/console/pop/{call_id}", name="web.console_pop")
def console_pop(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    if not call_id or len(call_id) > 64:
        raise PageNotFound()
    return render(request, "_console_pop.html", pop_ctx(request, user, call_id))


@router.post("/console/pop/{call_id}/ticket", name="web.console_ticket")
async def console_ticket(
    call_id: str, request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """File the call's ticket during the call: one per call (intake is idempotent on call_id),
    linked to the call so the bridge files no second one when the call ends."""
    require_role(user, "tickets.create")
    form = await request.form()
    keys = ("category", "urgency", "title", "content", "submitter_name", "enterprise_uscc",
            "enterprise_name")  # fmt: skip
    typed = {k: str(form.get(k) or "").strip() for k in keys}
    ctx = await run_in_threadpool(pop_ctx, request, user, call_id)
    call = ctx["call"]
    errors: dict[str, str] = {}
    data: dict[str, Any] = {k: v for k, v in typed.items() if v}
    data.update(
        channel="hotline",
        submitter_phone=call.get("caller") or None,
        channel_data={"call_id": call_id, "ivr_path": call.get("ivr_path") or ""},
    )
    if not typed["content"]:
        errors["content"] = "请填写诉求内容"
    ticket_in = None
    if not errors:
        try:
            ticket_in = TicketIn.model_validate(data)
        except ValidationError as e:
            for err in e.errors():
                errors[str(err["loc"][0]) if err["loc"] else "content"] = "填写有误"
    if ticket_in is not None:
        state = request.app.state

        def write() -> str:
            with session_scope(state.engine) as s:
                return submit(s, ticket_in, settings=state.settings, actor=user.username).number

        try:
            number = await run_in_threadpool(write)
        except TicketingError as e:
            errors[str(e.details.get("field") or "content")] = e.message
        else:
            await run_in_threadpool(link_ticket, state.redis, state.settings, call_id, number)
            await run_in_threadpool(remember_call, request, user, call, filed_ticket=number)
            log.info("console_ticket_filed", call_id=call_id, number=number, user=user.username)
            ctx = await run_in_threadpool(pop_ctx, request, user, call_id)
            ctx["message"] = f"已登记工单 {number}"
            return render(request, "_console_pop.html", ctx)
    ctx.update(form=typed, errors=errors)
    return render(request, "_console_pop.html", ctx, status=422)
