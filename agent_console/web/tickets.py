"""Ticket page, search and the enterprise file (一企一档). Reads through ticketing's front door and
the API's row-level rule (agent_console.access): a handler gets the same 404 as the API for a
ticket its department has no sub-order on, and sees only its own department's sub-orders."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from math import ceil
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import col, select

from agent_console.access import handler_department, is_handler
from agent_console.access import visible_ticket as api_visible_ticket
from agent_console.web.core import (
    PageNotFound,
    may,
    page_user,
    redirect,
    render,
    require_role,
    to_utc_naive,
)
from agent_console.web.policy import new_profile_ctx, profile_ctx
from config.database import session_scope
from recordings import PlaybackDenied, Recording, check_access
from ticketing import (
    MAX_SUMMARY,
    SUMMARY_EVENT,
    Enterprise,
    Evaluation,
    NotFound,
    Notice,
    SubOrder,
    Ticket,
    TicketFilter,
    TicketingError,
    User,
    all_departments,
    approve_summary,
    enterprise_file,
    list_tickets,
    related_ticket,
    summary_mode,
    ticket_policies,
    utcnow,
)
from ticketing import history as ticket_history

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20


def departments(session: Any) -> dict[str, str]:
    """Code -> name, in the configured order (ticketing.all_departments)."""
    return {d.code: d.name for d in all_departments(session)}


def ticket_detail(session: Any, settings: Any, user: User, number: str) -> dict[str, Any]:
    """Everything the ticket page shows, filtered as the API's tickets.get filters it."""
    try:
        ticket = api_visible_ticket(session, user, number)
    except NotFound:
        raise PageNotFound(f"未找到工单：{number}") from None
    subs = list(
        session.exec(
            select(SubOrder).where(SubOrder.ticket_id == ticket.id).order_by(col(SubOrder.id))
        )
    )
    history = ticket_history(session, ticket.id or 0)  # loaded: id set
    dept = handler_department(user)
    if dept is not None:
        subs = [s for s in subs if s.department_code == dept]
        own = {s.id for s in subs}
        history = [e for e in history if e.suborder_id is None or e.suborder_id in own]
    notices = session.exec(
        select(Notice).where(Notice.ticket_id == ticket.id).order_by(col(Notice.id))
    ).all()
    evaluations = session.exec(
        select(Evaluation).where(Evaluation.ticket_id == ticket.id).order_by(col(Evaluation.id))
    ).all()
    enterprise = session.get(Enterprise, ticket.enterprise_id) if ticket.enterprise_id else None
    transcripts = {
        (e.detail or {}).get("recording_id"): e.detail
        for e in history
        if e.action == "transcript_attached"
    }
    recordings = []
    for rec in session.exec(
        select(Recording).where(Recording.ticket_id == ticket.id).order_by(col(Recording.id))
    ):
        try:
            check_access(session, settings, rec, user)
            allowed, why = rec.deleted_at is None, "录音已按保存期限删除"
        except PlaybackDenied as e:
            allowed, why = False, e.message
        recordings.append(
            {"rec": rec, "allowed": allowed, "why": why, "transcript": transcripts.get(rec.id)}
        )
    return {
        "t": ticket,
        "related": related_ticket(session, ticket),
        "subs": subs,
        "history": [e for e in history if e.action != "transcript_attached"],
        "notices": notices,
        "evaluations": evaluations,
        "enterprise": enterprise,
        "recordings": recordings,
        "depts": departments(session),
        "now": utcnow(),
        "policies": ticket_policies(session, ticket.id or 0),  # issue #12: what it is about
    }


@router.get("/tickets/{number}", name="web.ticket")
def ticket_page(
    number: str, request: Request, user: User = Depends(page_user("web.ticket"))
) -> Response:
    settings = request.app.state.settings
    with session_scope(request.app.state.engine, read_only=True) as s:
        ctx = ticket_detail(s, settings, user, number)
    ctx["can_dispatch"] = may(user, "tickets.dispatch") and not is_handler(user)
    ctx["can_reclassify"] = may(user, "tickets.reclassify") and (
        user.role != "agent" or ctx["t"].created_by == user.username
    )
    ctx.update(summary_context(settings, user, ctx))
    return render(request, "ticket.html", ctx)


def summary_context(settings: Any, user: User, ctx: dict[str, Any]) -> dict[str, Any]:
    """The resolution-summary card (notices.yaml `resolution_reply: summary`): shown to the roles of
    the API's tickets.resolution_summary once the ticket is resolved, with the summaries already
    sent; the form stays until one is sent for the current round."""
    ticket = ctx["t"]
    sent = [e for e in ctx["history"] if e.action == SUMMARY_EVENT]
    this_round = [e for e in sent if int((e.detail or {}).get("round") or 0) == ticket.round]
    return {
        "summary_card": summary_mode(settings)
        and may(user, "tickets.resolution_summary")
        and (ticket.status == "resolved" or bool(sent)),
        "summaries": sent,
        "summary_awaited": ticket.status == "resolved" and not this_round,
        "summary_max": MAX_SUMMARY,
    }


@router.post("/tickets/{number}/resolution-summary", name="web.ticket_resolution_summary")
async def resolution_summary(
    number: str, request: Request, user: User = Depends(page_user("web.ticket"))
) -> Response:
    """The dispatcher's summary of a resolved ticket, texted to the submitter with a fresh rating
    link (the same service as the API's tickets.resolution_summary). htmx swaps the card; a plain
    form post gets the page back."""
    require_role(user, "tickets.resolution_summary")
    form = await request.form()
    text = str(form.get("text") or "")
    state = request.app.state
    error = None
    try:
        with session_scope(state.engine) as s:
            approve_summary(
                s, state.settings, api_visible_ticket(s, user, number), text, actor=user.username
            )
    except NotFound:
        raise PageNotFound(f"未找到工单：{number}") from None
    except TicketingError as e:
        error = e.message
    htmx = bool(request.headers.get("HX-Request"))
    if error is None and not htmx:
        return redirect(f"/tickets/{number}?done=summary", request)
    with session_scope(state.engine, read_only=True) as s:
        ctx = ticket_detail(s, state.settings, user, number)
    ctx.update(summary_context(state.settings, user, ctx))
    ctx.update(summary_error=error, summary_text=text if error else "", summary_sent=not error)
    status = 422 if error else 200
    return render(
        request, "_resolution_summary.html" if htmx else "ticket.html", ctx, status=status
    )


def _day(value: str | None, field: str, errors: dict[str, str], end: bool = False) -> Any:
    """A yyyy-mm-dd filter in local time, as UTC (the end of a range is exclusive: next day)."""
    if not value:
        return None
    try:
        d = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        errors[field] = "日期格式应为 年-月-日"
        return None
    return datetime.combine(d + timedelta(days=1 if end else 0), time())


@router.get("/search", name="web.search")
def search_page(request: Request, user: User = Depends(page_user("web.search"))) -> Response:
    qp = request.query_params
    form = {k: qp.get(k, "").strip() for k in (
        "q", "status", "channel", "category", "urgency", "warning", "department", "uscc",
        "phone", "from", "to",
    )}  # fmt: skip
    errors: dict[str, str] = {}
    try:
        page = max(1, min(int(qp.get("page", "1")), 100000))
    except ValueError:
        page = 1
    settings = request.app.state.settings
    tz_from = _day(form["from"], "from", errors)
    tz_to = _day(form["to"], "to", errors, end=True)
    zone = ZoneInfo(settings.timezone)  # filter days are local days

    def utc(d: datetime | None) -> datetime | None:
        return to_utc_naive(d.replace(tzinfo=zone)) if d else None

    department = form["department"] or None
    if is_handler(user):
        department = user.department_code
    items: list[Ticket] = []
    total = 0
    with session_scope(request.app.state.engine, read_only=True) as s:
        depts = departments(s)
        filters = None
        try:
            filters = TicketFilter(
                q=form["q"] or None,
                status=form["status"] or None,
                channel=form["channel"] or None,
                category=form["category"] or None,
                urgency=form["urgency"] or None,
                warning=form["warning"] or None,
                department=department,
                uscc=form["uscc"] or None,
                phone=form["phone"] or None,
                created_from=utc(tz_from),
                created_to=utc(tz_to),
            )
        except ValidationError as e:
            for err in e.errors():
                errors[str(err["loc"][0])] = "取值无效"
        if filters is not None and not errors:
            try:
                items, total = list_tickets(s, filters, page, PAGE_SIZE)
            except TicketingError as e:
                errors[str(e.details.get("field", "q"))] = e.message
    pages = max(1, ceil(total / PAGE_SIZE))
    query = "&".join(f"{k}={v}" for k, v in qp.items() if k != "page" and v)
    return render(
        request,
        "search.html",
        {
            "form": form,
            "errors": errors,
            "items": items,
            "total": total,
            "page": page,
            "pages": pages,
            "query": query,
            "depts": depts,
            "handler": is_handler(user),
            "now": utcnow(),
        },
        status=422 if errors else 200,
    )


@router.get("/enterprises", name="web.enterprises")
def enterprise_lookup(
    request: Request, user: User = Depends(page_user("web.enterprise"))
) -> Response:
    uscc = request.query_params.get("uscc", "").strip()
    ctx: dict[str, Any] = {"uscc": uscc, "error": None, "ent": None, "tickets": []}
    status = 200
    if uscc:
        with session_scope(request.app.state.engine, read_only=True) as s:
            try:
                ctx["ent"], ctx["tickets"] = enterprise_file(s, uscc)
                ctx.update(profile_ctx(s, request.app.state.settings, ctx["ent"]))
            except TicketingError as e:
                ctx["error"], status = e.message, e.status
                ctx.update(new_profile_ctx(request.app.state.settings, uscc, e))
    ctx["now"] = utcnow()
    return render(request, "enterprise.html", ctx, status=status)


@router.get("/enterprises/{uscc}", name="web.enterprise")
def enterprise_page(
    uscc: str, request: Request, user: User = Depends(page_user("web.enterprise"))
) -> Response:
    with session_scope(request.app.state.engine, read_only=True) as s:
        try:
            ent, tickets = enterprise_file(s, uscc)
        except TicketingError as e:
            raise PageNotFound(e.message) from None
        profile = profile_ctx(s, request.app.state.settings, ent)
    ctx: dict[str, Any] = {"uscc": ent.uscc, "error": None, "ent": ent, "tickets": tickets}
    ctx["now"], ctx["saved"] = utcnow(), request.query_params.get("saved") == "1"
    return render(request, "enterprise.html", {**ctx, **profile})
