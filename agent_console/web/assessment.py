"""§16–18 pages: the month's ranking (/assessment, with its exports), one department's figures
against the city (/assessment/departments/{code}, its month-by-month trend), the tickets behind
one indicator (the drill-down, where a department files an appeal), and the appeals list where
an admin decides them. A handler sees its own department only (another's: 403, as the inbox);
each action is checked against the API row doing the same (assessment.appeal_file, …)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.access import handler_department, is_handler
from agent_console.ratelimit import public_read_limit
from agent_console.routes.assessment import export_response, keep
from agent_console.web.core import (
    PageDenied,
    PageNotFound,
    may,
    page_row_id,
    page_user,
    redirect,
    render,
    require_role,
)
from config.database import session_scope
from config.settings import Settings
from ticketing import (
    APPEAL_STATUS_LABELS,
    AssessmentPeriod,
    NotFound,
    TicketingError,
    User,
    assess,
    assessment_department_row,
    assessment_portrait,
    keep_assessment_months,
    recompute_assessment_month,
    utcnow,
)
from ticketing import ASSESSMENT_INDICATORS as INDICATORS
from ticketing import ASSESSMENT_TIMES as TIMES
from ticketing import assessment_appeals as list_appeals
from ticketing import assessment_city_average as city_average
from ticketing import assessment_config as score_config
from ticketing import assessment_is_closed as is_closed
from ticketing import assessment_period as parse_period
from ticketing import assessment_rows as indicator_rows
from ticketing import decide_assessment_appeal as decide_appeal
from ticketing import file_assessment_appeal as file_appeal
from ticketing import previous_assessment_month as previous_month_key
from ticketing import published_assessment_month as published_month

router = APIRouter(include_in_schema=False)
TRACE_PAGE = 200


def _period(request: Request) -> AssessmentPeriod:
    settings: Settings = request.app.state.settings
    key = request.query_params.get("period") or previous_month_key(settings, utcnow())
    try:
        return parse_period(settings, key)
    except TicketingError:
        return parse_period(settings, previous_month_key(settings, utcnow()))


def _own(user: User, code: str) -> None:
    if is_handler(user) and code != user.department_code:
        raise PageDenied("只能查看本部门的考核")


def _labels() -> dict[str, Any]:
    return {
        "inds": INDICATORS,
        "appeal_labels": {str(k): v for k, v in APPEAL_STATUS_LABELS.items()},
    }


def fmt(code: str, v: float | None) -> str:
    """An indicator's value as the pages show it."""
    if v is None:
        return "—"
    kind = INDICATORS[code].kind
    if kind == "rate":
        return f"{v * 100:.1f}%"
    if kind == "hours":
        return f"{v:.1f}"
    return f"{v:.1f}" if v != int(v) else str(int(v))


@router.get("/assessment", name="web.assessment")
def ranking_page(request: Request, user: User = Depends(page_user("web.assessment"))) -> Response:
    period = _period(request)
    if is_handler(user):
        return redirect(f"/assessment/departments/{user.department_code}?period={period.key}")
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        result = assess(s, state.settings, period)
        pending = len(list_appeals(s, status="pending", limit=500))
    keep(request, result)
    chart = {
        "kind": "bar",
        "data": [{"name": r.name, "value": r.score} for r in result.rows if r.assessed],
    }
    return render(
        request,
        "assessment.html",
        {
            "result": result,
            "period": period,
            "avg": city_average(result),
            "fmt": fmt,
            "pending": pending,
            "chart_json": json.dumps(chart, ensure_ascii=False),
            "cfg": score_config(state.settings),
            "may_recompute": may(user, "assessment.recompute") and is_closed(period, utcnow()),
            "error": request.query_params.get("error"),
            **_labels(),
        },
    )


@router.get("/assessment/departments/{code}", name="web.assessment_department")
def department_page(
    code: str, request: Request, user: User = Depends(page_user("web.assessment"))
) -> Response:
    _own(user, code)
    period = _period(request)
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        p = assessment_portrait(
            s, state.settings, period, code, trend=request.query_params.get("trend") != "0"
        )
        appeals = list_appeals(s, month=period.key, department=code, limit=100)
    if p.to_keep:
        with session_scope(state.engine) as s:
            keep_assessment_months(s, state.settings, p.to_keep)
    if p.row is None:
        raise PageNotFound(f"未找到部门：{code}")
    return render(
        request,
        "assessment_department.html",
        {
            "result": p.result,
            "row": p.row,
            "period": period,
            "avg": city_average(p.result),
            "fmt": fmt,
            "appeals": appeals,
            "slowest": p.slowest,
            "trend_json": json.dumps(p.trend, ensure_ascii=False) if p.trend else "",
            "cfg": score_config(state.settings),
            **_labels(),
        },
    )


@router.get("/assessment/departments/{code}/indicators/{indicator}", name="web.assessment_trace")
def trace_page(
    code: str,
    indicator: str,
    request: Request,
    user: User = Depends(page_user("web.assessment")),
) -> Response:
    _own(user, code)
    if indicator not in INDICATORS:
        raise PageNotFound(f"未知考核指标：{indicator}")
    period = _period(request)
    state = request.app.state
    try:
        page = max(1, min(int(request.query_params.get("page") or 1), 100_000))
    except ValueError:
        page = 1
    with session_scope(state.engine, read_only=True) as s:
        got = assessment_department_row(s, state.settings, period, code)
        if got is None:
            raise PageNotFound(f"未找到部门：{code}")
        row, computed_at = got
        rows = indicator_rows(
            s,
            state.settings,
            period,
            code,
            indicator,
            limit=TRACE_PAGE + 1,
            offset=(page - 1) * TRACE_PAGE,
        )
        filed = {
            a.ticket_id
            for a, _ in list_appeals(s, month=period.key, department=code, limit=500)
            if a.indicator == INDICATORS[indicator].appeal_under
        }
    may_appeal = period.kind == "month" and may(user, "assessment.appeal_file")
    return render(
        request,
        "assessment_trace.html",
        {
            "row": row,
            "period": period,
            "ind": INDICATORS[indicator],
            "rows": rows[:TRACE_PAGE],
            "page": page,
            "more": len(rows) > TRACE_PAGE,
            "computed_at": computed_at,
            "times": TIMES[INDICATORS[indicator].source],
            "fmt": fmt,
            "filed": filed,
            "may_appeal": may_appeal,
            "error": request.query_params.get("error"),
            **_labels(),
        },
    )


@router.post("/assessment/appeals", name="web.assessment_appeal_file")
async def file_appeal_action(
    request: Request, user: User = Depends(page_user("web.assessment"))
) -> Response:
    require_role(user, "assessment.appeal_file")
    form = await request.form()
    month = str(form.get("month") or "")
    dept = handler_department(user) or str(form.get("department") or "")
    indicator = str(form.get("indicator") or "")
    _own(user, dept)
    back = f"/assessment/departments/{dept}/indicators/{indicator}?period={month}"
    try:
        with session_scope(request.app.state.engine) as s:
            file_appeal(
                s,
                request.app.state.settings,
                month=month,
                department=dept,
                indicator=indicator,
                ticket_number=str(form.get("ticket_number") or ""),
                reason=str(form.get("reason") or ""),
                actor=user.username,
            )
    except TicketingError as e:
        from urllib.parse import quote

        return redirect(back + "&error=" + quote(e.message), request)
    return redirect(back + "&done=filed", request)


@router.get("/assessment/appeals", name="web.assessment_appeals")
def appeals_page(request: Request, user: User = Depends(page_user("web.assessment"))) -> Response:
    status = request.query_params.get("status") or "pending"
    status = status if status in ("pending", "accepted", "rejected") else "pending"
    with session_scope(request.app.state.engine, read_only=True) as s:
        rows = list_appeals(s, department=handler_department(user), status=status)
    return render(
        request,
        "assessment_appeals.html",
        {"rows": rows, "status": status, "error": request.query_params.get("error"), **_labels()},
    )


@router.post("/assessment/appeals/{appeal_id}/decision", name="web.assessment_appeal_decide")
async def decide_action(
    appeal_id: int, request: Request, user: User = Depends(page_user("web.assessment"))
) -> Response:
    require_role(user, "assessment.appeal_decide")
    page_row_id(appeal_id)
    form = await request.form()
    accept = str(form.get("decision") or "") == "accept"
    try:
        with session_scope(request.app.state.engine) as s:
            decide_appeal(
                s,
                request.app.state.settings,
                appeal_id,
                accept=accept,
                note=str(form.get("note") or ""),
                actor=user.username,
            )
    except NotFound:
        raise PageNotFound("申诉不存在") from None
    except TicketingError as e:
        from urllib.parse import quote

        return redirect("/assessment/appeals?error=" + quote(e.message), request)
    return redirect("/assessment/appeals?status=pending&done=1", request)


@router.get("/assessment/export", name="web.assessment_export")
def export_page(request: Request, user: User = Depends(page_user("web.assessment"))) -> Response:
    require_role(user, "assessment.export")
    fmt_ = request.query_params.get("format", "xlsx")
    with session_scope(request.app.state.engine, read_only=True) as s:
        result = assess(s, request.app.state.settings, _period(request))
    keep(request, result)
    return export_response(result, "csv" if fmt_ == "csv" else "xlsx")


@router.post("/assessment/recompute", name="web.assessment_recompute")
async def recompute_action(
    request: Request, user: User = Depends(page_user("web.assessment"))
) -> Response:
    """重新计算 (admins): a closed month's kept figures are dropped and an RQ job computes them
    again (the API's POST /api/v1/assessment/recompute)."""
    from urllib.parse import quote

    require_role(user, "assessment.recompute")
    form = await request.form()
    month = str(form.get("month") or "")
    try:
        with session_scope(request.app.state.engine) as s:
            recompute_assessment_month(s, request.app.state.settings, month, utcnow())
    except TicketingError as e:
        return redirect(f"/assessment?period={quote(month)}&error=" + quote(e.message), request)
    return redirect(f"/assessment?period={quote(month)}&done=recompute", request)


# ---------------------------------------------------------------- the public summary (§18)
public = APIRouter(
    prefix="/portal", include_in_schema=False, dependencies=[Depends(public_read_limit)]
)
PUBLIC_COLUMNS = ("volume", "accept_on_time", "finish_on_time", "satisfaction", "avg_handle_hours")


@public.get("/assessment", name="portal.assessment")
def public_summary(request: Request) -> Response:
    """办事质效晾晒: each department's figures of a complete month, for anyone (no login). Only
    departments' monthly figures: no ticket, no person, no appeal."""
    from agent_console.web.portal import render as portal_render

    settings: Settings = request.app.state.settings
    with session_scope(request.app.state.engine, read_only=True) as s:
        period = published_month(s, settings, request.query_params.get("period"), utcnow())
        result = assess(s, settings, period)
    keep(request, result)
    return portal_render(
        request,
        "assessment.html",
        {
            "result": result,
            "period": period,
            "columns": PUBLIC_COLUMNS,
            "avg": city_average(result),
            "fmt": fmt,
            "inds": INDICATORS,
        },
    )
