"""Tickets: staff intake (any channel), search, detail, dispatch, evaluation. Thin: every rule lives
in the ticketing services; this layer authorises, translates and serialises."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlmodel import col, select

from agent_console.access import handler_department, is_handler, visible_events, visible_ticket
from agent_console.deps import (
    Bearer,
    SessionDep,
    SettingsDep,
    TransactionRoute,
    require,
    require_token,
)
from agent_console.errors import ApiError, json_body, responses
from agent_console.ratelimit import client_ip
from agent_console.schemas import (
    DispatchIn,
    DispatchOut,
    EvaluationIn,
    EvaluationOut,
    EventOut,
    NoticeOut,
    ReclassifyIn,
    RelatedTicket,
    ResolutionSummaryIn,
    ResolutionSummaryOut,
    SubOrderOut,
    TicketDetail,
    TicketOut,
    TicketPage,
)
from ticketing import (
    Category,
    Channel,
    Evaluation,
    Notice,
    SubOrder,
    TicketFilter,
    TicketStatus,
    Urgency,
    User,
    Warning,
    approve_summary,
    dispatch_to_departments,
    evaluate,
    is_mainland_mobile,
    list_tickets,
    reclassify,
    related_ticket,
)
from ticketing import history as ticket_history

router = APIRouter(prefix="/tickets", tags=["tickets"], route_class=TransactionRoute)
# the create route's token check, also called by agent_console.fastpath (the same route, served
# without the router)
CREATE_TOKEN = require_token("tickets.create")
MAX_PAGE_SIZE = 100


@router.post(
    "",
    name="tickets.create",
    status_code=201,
    response_model=TicketOut,
    responses=responses(401, 403, 409, 413, 422),
    # The body is TicketIn, validated by the intake writer after the user check (see
    # agent_console.intake_batcher), so FastAPI is not asked to parse it; documented as usual.
    openapi_extra=json_body("TicketIn"),
)
async def create_ticket(
    request: Request,
    bearer: Bearer = Depends(CREATE_TOKEN),
) -> Response:
    """Staff intake from any channel (hotline, window, opinion, survey …) through the one intake
    path; category/urgency left out are classified, auto-dispatch applies. With an
    `Idempotency-Key` header, a repeat of the same request (a double click, a retry) answers the
    ticket the first one filed instead of filing another."""
    state = request.app.state
    # Written by the process's intake writer with whatever other intakes are waiting (one
    # transaction); answered after COMMIT, already serialised as TicketOut.
    body, channel = await state.intake.submit(
        await request.body(), bearer, request.headers.get("idempotency-key")
    )
    state.metrics.tickets_created.labels(channel).inc()
    return Response(body, status_code=201, media_type="application/json")


@router.get(
    "",
    name="tickets.list",
    response_model=TicketPage,
    responses=responses(401, 403, 422),
)
def search_tickets(
    session: SessionDep,
    user: User = Depends(require("tickets.list")),
    status: TicketStatus | None = None,
    department: Annotated[str | None, Query(max_length=32)] = None,
    channel: Channel | None = None,
    category: Category | None = None,
    urgency: Urgency | None = None,
    warning: Warning | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    q: Annotated[str | None, Query(max_length=200, description="full text, title+content")] = None,
    uscc: Annotated[str | None, Query(max_length=40)] = None,
    phone: Annotated[str | None, Query(max_length=40)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> TicketPage:
    """Newest first. A handler's search is limited to tickets its department has sub-orders on.

    `total` is exact, except when `q` has a term shorter than 3 characters (no trigram index
    serves it): counting then stops after this page plus two more pages and one row, so a
    `total` equal to that cap means "at least" (see ticketing.queries)."""
    if is_handler(user):
        if department is not None and department != user.department_code:
            raise ApiError(403, "只能查询本部门的工单", details={"department": department})
        department = user.department_code
    filters = TicketFilter(
        status=status,
        department=department,
        channel=channel,
        category=category,
        urgency=urgency,
        warning=warning,
        created_from=created_from,
        created_to=created_to,
        q=q,
        uscc=uscc,
        phone=phone,
    )
    items, total = list_tickets(session, filters, page, page_size)
    return TicketPage(
        items=[TicketOut.model_validate(t) for t in items],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get(
    "/{number}",
    name="tickets.get",
    response_model=TicketDetail,
    responses=responses(401, 403, 404),
)
def get_ticket(
    number: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.get")),
) -> TicketDetail:
    """The ticket with its sub-orders, history, notices and evaluations. A handler gets 404 unless
    its department has a sub-order on it, and sees only its own department's sub-orders (in the
    history too). Transcripts follow the recordings policy (agent_console.access.visible_events)."""
    ticket = visible_ticket(session, user, number)
    subs = list(
        session.exec(
            select(SubOrder).where(SubOrder.ticket_id == ticket.id).order_by(col(SubOrder.id))
        )
    )
    dept = handler_department(user)
    if dept is not None:
        subs = [s for s in subs if s.department_code == dept]
    history = visible_events(
        session,
        settings,
        request.app.state.engine,
        user,
        ticket_history(session, ticket.id or 0),  # loaded: id set
        client_ip(request),
    )
    notices = session.exec(
        select(Notice).where(Notice.ticket_id == ticket.id).order_by(col(Notice.id))
    ).all()
    evaluations = session.exec(
        select(Evaluation).where(Evaluation.ticket_id == ticket.id).order_by(col(Evaluation.id))
    ).all()
    earlier = related_ticket(session, ticket, department=dept)
    return TicketDetail(
        **TicketOut.model_validate(ticket).model_dump(),
        duplicate_of=RelatedTicket.model_validate(earlier) if earlier else None,
        suborders=[SubOrderOut.model_validate(s) for s in subs],
        events=[EventOut.model_validate(e) for e in history],
        notices=[NoticeOut.model_validate(n) for n in notices],
        evaluations=[EvaluationOut.model_validate(e) for e in evaluations],
    )


@router.post(
    "/{number}/dispatch",
    name="tickets.dispatch",
    response_model=DispatchOut,
    responses=responses(401, 403, 404, 409, 422),
)
def dispatch_ticket(
    number: str,
    body: DispatchIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.dispatch")),
) -> DispatchOut:
    """Manual / parallel dispatch: one sub-order per department, each with its own deadline."""
    ticket = visible_ticket(session, user, number)
    subs = dispatch_to_departments(
        session,
        settings,
        ticket,
        body.departments,
        actor=user.username,
        instructions=body.instructions,
        deadline=body.deadline,
        allow_beyond_ticket_deadline=body.allow_beyond_ticket_deadline,
        lead=body.lead,
        deadlines=body.deadlines,
    )
    session.flush()
    ticket = visible_ticket(session, user, number)
    return DispatchOut(
        ticket=TicketOut.model_validate(ticket),
        suborders=[SubOrderOut.model_validate(s) for s in subs],
    )


@router.post(
    "/{number}/evaluation",
    name="tickets.evaluate",
    status_code=201,
    response_model=EvaluationOut,
    responses=responses(401, 403, 404, 409, 422),
)
def evaluate_ticket(
    number: str,
    body: EvaluationIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.evaluate")),
) -> EvaluationOut:
    """Staff record the caller's evaluation taken on a return call (回访): kept as staff-recorded
    (source staff, channel callback), superseded by the submitter's own rating if one comes.
    Unsatisfied reopens."""
    ticket = visible_ticket(session, user, number)
    ev = evaluate(
        session,
        settings,
        ticket,
        process=body.process,
        timeliness=body.timeliness,
        result=body.result,
        comment=body.comment,
        responsible_person=body.responsible_person,
        actor=user.username,
        source="staff",
        channel="callback",
    )
    session.flush()
    return EvaluationOut.model_validate(ev)


@router.post(
    "/{number}/resolution-summary",
    name="tickets.resolution_summary",
    response_model=ResolutionSummaryOut,
    responses=responses(401, 403, 404, 409, 422),
)
def resolution_summary(
    number: str,
    body: ResolutionSummaryIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.resolution_summary")),
) -> ResolutionSummaryOut:
    """A dispatcher approves what the submitter is told of a resolved ticket (notices.yaml
    `resolution_reply: summary`): texted with a fresh rating link, shown on the public portal
    instead of the departments' replies."""
    ticket = visible_ticket(session, user, number)
    approve_summary(session, settings, ticket, body.text, actor=user.username)
    session.flush()
    return ResolutionSummaryOut(
        number=ticket.number, sms_sent=is_mainland_mobile(ticket.submitter_phone)
    )


@router.post(
    "/{number}/reclassify",
    name="tickets.reclassify",
    response_model=TicketOut,
    responses=responses(401, 403, 404, 409, 422),
)
def reclassify_ticket(
    number: str,
    body: ReclassifyIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.reclassify")),
) -> TicketOut:
    """Correct category and/or urgency with a reason (an event); the committed deadline follows
    the new grade from now. An agent may correct only a ticket it filed itself (during its call)."""
    ticket = visible_ticket(session, user, number)
    if user.role == "agent" and ticket.created_by != user.username:
        raise ApiError(403, "坐席只能更正本人受理的工单", code="forbidden")
    ticket = reclassify(
        session,
        settings,
        ticket.id or 0,  # loaded: id set
        actor=user.username,
        reason=body.reason,
        category=body.category,
        urgency=body.urgency,
    )
    session.flush()
    return TicketOut.model_validate(ticket)
