"""The supervisor wallboard (role supervisor; leader read only) and its live control.

The board is pushed: /wallboard/events is an SSE stream fed by this process's hub
(wallboard_hub.py: one Redis subscription over every PBX's bridge, a full board on (re)connect).
The figures are computed in one place, callcenter.figures. Control actions (pause, ready, log out,
add to / remove from a queue, listen / whisper / barge) go through the bridge of the agent's PBX
(callcenter.control: Redis command, audit row) — this process never speaks AMI.
Also here: the day / date-range report (xlsx, CSV) and the agent's own figures for the console.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from agent_console.roles import ROLE_MATRIX
from agent_console.web.console import console_config, get_seat
from agent_console.web.core import page_user, render, require_role
from agent_console.web.wallboard_hub import hub_of
from callcenter.control import ACTION_LABELS, ControlError, supervise
from callcenter.figures import agent_today, board_config, local_day_bounds, period_figures
from callcenter.live import load_snapshot
from callcenter.report import tables, to_csv, to_xlsx
from config.database import session_scope
from ticketing import User, is_digits, utcnow

router = APIRouter(include_in_schema=False)
KEEPALIVE_SECONDS = 15.0
MAX_REPORT_DAYS = 92


@router.get("/wallboard", name="web.wallboard")
def wallboard_page(request: Request, user: User = Depends(page_user("web.wallboard"))) -> Response:
    settings = request.app.state.settings
    cfg = console_config(settings)
    board = board_config(settings)
    today = utcnow().date()
    return render(
        request,
        "wallboard.html",
        {
            "cfg": cfg,
            "can_control": user.role in _control_roles(),
            "labels_json": json.dumps(
                {"reasons": cfg["pause_reasons"], "queues": cfg["queues"]}, ensure_ascii=False
            ),
            "today": today.isoformat(),
            "sl_seconds": board.default.service_level_seconds,
            "sl_varies": any(
                q.service_level_seconds != board.default.service_level_seconds
                for q in board.queues.values()
            ),
        },
    )


def _control_roles() -> frozenset[str]:
    return ROLE_MATRIX["web.wallboard_control"]


async def _stream(request: Request) -> AsyncIterator[str]:
    hub = hub_of(request.app)
    q = await hub.join()
    yield "retry: 2000\n\n"
    try:
        while not await request.is_disconnected():
            try:
                msg = await asyncio.wait_for(q.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield f"event: board\ndata: {msg}\n\n"
    finally:
        hub.leave(q)


@router.get("/wallboard/events", name="web.wallboard_events")
async def wallboard_events(
    request: Request, user: User = Depends(page_user("web.wallboard"))
) -> Response:
    return StreamingResponse(
        _stream(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/wallboard/control", name="web.wallboard_control")
async def wallboard_control(
    request: Request, user: User = Depends(page_user("web.wallboard"))
) -> Response:
    """One supervisor action on one agent; the PBX's answer or a clear error, and an audit row."""
    require_role(user, "web.wallboard_control")
    form = await request.form()
    f = {k: str(form.get(k) or "").strip() for k in
         ("action", "server", "interface", "queue", "reason", "ext")}  # fmt: skip
    settings = request.app.state.settings
    cfg = console_config(settings)
    error = None
    kw: dict[str, Any] = {}
    servers = {s.name for s in settings.asterisk} | await run_in_threadpool(_live_servers, request)
    if f["action"] not in ACTION_LABELS:
        error = "未知操作"
    elif not f["interface"] or len(f["interface"]) > 100:
        error = "请选择坐席"
    elif f["server"] not in servers:
        error = "未知的交换机"
    elif f["action"] == "pause":
        if f["reason"] not in cfg["pause_reasons"]:
            error = "请选择小休原因"
        kw["reason"] = f["reason"]
    elif f["action"] in ("queue_add", "queue_remove"):
        if f["queue"] not in cfg["queues"]:
            error = "请选择队列"
        kw["queue"] = f["queue"]
    elif f["action"] == "logout":
        snap = await run_in_threadpool(load_snapshot, request.app.state.redis, settings)
        agent: dict[str, Any] = next((a for a in snap["agents"] if a.get("server") == f["server"]
                      and a.get("interface") == f["interface"]), {})  # fmt: skip
        kw["queues"] = sorted((agent.get("queues") or {}).keys())
    elif f["action"] in ("listen", "whisper", "barge"):
        if not is_digits(f["ext"]) or not 2 <= len(f["ext"]) <= 8:
            error = "请填写您的分机号（2-8 位数字）"
        kw["phone"] = board_config(settings).spy_phone_template.format(ext=f["ext"])
    message = None
    if error is None:
        try:
            message = await run_in_threadpool(
                supervise,
                request.app.state.redis,
                request.app.state.engine,
                settings,
                actor=user.username,
                server=f["server"],
                action=f["action"],
                interface=f["interface"],
                **kw,
            )
        except ControlError as e:
            error = str(e)
    return render(
        request,
        "_wallboard_result.html",
        {"message": message, "error": error},
        status=200 if error is None else 422,
    )


def _live_servers(request: Request) -> set[str]:
    """PBXs whose bridge publishes live state (CALLCENTER_ASTERISK lists them; a bridge run
    elsewhere registers itself)."""
    k = f"{request.app.state.settings.redis_namespace}:live:servers"
    return {
        (x.decode() if isinstance(x, bytes) else x) for x in request.app.state.redis.smembers(k)
    }


def _parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@router.get("/wallboard/report", name="web.wallboard_report")
def wallboard_report(
    request: Request,
    start: str = "",
    end: str = "",
    fmt: str = "xlsx",
    user: User = Depends(page_user("web.wallboard")),
) -> Response:
    """The stored figures of [start, end] (local days) by queue, agent and half hour."""
    settings = request.app.state.settings
    cfg = board_config(settings)
    first, last = _parse_day(start), _parse_day(end or start)
    error = None
    if first is None or last is None:
        error = "日期格式应为 YYYY-MM-DD"
    elif last < first:
        error = "结束日期不能早于开始日期"
    elif (last - first).days >= MAX_REPORT_DAYS:
        error = f"一次最多导出 {MAX_REPORT_DAYS} 天"
    elif fmt not in ("xlsx", "csv"):
        error = "格式应为 xlsx 或 csv"
    if error is not None or first is None or last is None:
        return render(request, "error.html", {"title": "无法导出", "message": error}, status=422)
    lo, _ = local_day_bounds(first, cfg.timezone)
    _, hi = local_day_bounds(last, cfg.timezone)
    with session_scope(request.app.state.engine, read_only=True) as s:
        fig = period_figures(s, cfg, lo, hi, utcnow())
    span = first.isoformat() if first == last else f"{first.isoformat()}_{last.isoformat()}"
    title = f"店小二热线 话务报表 {span}（北京时间）"
    tabs = tables(fig, console_config(settings)["pause_reasons"])
    if fmt == "csv":
        body, mime = to_csv(title, tabs), "text/csv; charset=utf-8"
    else:
        body = to_xlsx(title, tabs)
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    name = f"hotline-report-{span}.{fmt}"
    return Response(
        body,
        media_type=mime,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


# ---------------------------------------------------------------- the agent's own figures
@router.get("/console/my-figures", name="web.console_my_figures")
def console_my_figures(
    request: Request, user: User = Depends(page_user("web.console"))
) -> Response:
    """The agent console's block: today's calls taken, AHT, paused time by reason (stored
    figures, same rules as the wallboard's)."""
    seat = get_seat(request, user)
    fig = None
    if seat:
        cfg = board_config(request.app.state.settings)
        with session_scope(request.app.state.engine, read_only=True) as s:
            fig = agent_today(s, cfg, utcnow(), seat["interface"], seat.get("server") or None)
    reasons = console_config(request.app.state.settings)["pause_reasons"]
    return render(request, "_my_figures.html", {"fig": fig, "reasons": reasons})
