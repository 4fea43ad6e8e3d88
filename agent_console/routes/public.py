"""Unauthenticated endpoints for the public web/mobile channel.

Guards: a Redis fixed-window rate limit per client IP (settings.public_rate_limit_per_minute,
429 + Retry-After), a request body limit (413, BodyLimitMiddleware) and a content length limit
(settings.public_max_content_chars, 422). The submitter gets two single-purpose secrets at
submission: the notice token (in the SMS link: confirms the acceptance notice, nothing else) and
the evaluation token (authorises the submitter's own evaluation of that ticket, nothing else).
Neither is ever shown to staff (ticketing.notices), so no department can rate itself in the
citizen's name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from sqlmodel import col, select

from agent_console.deps import SessionDep, SettingsDep, TransactionRoute
from agent_console.errors import ApiError, responses
from agent_console.ratelimit import public_limit
from agent_console.schemas import (
    EvaluationOut,
    NoticeConfirmOut,
    PublicEvaluationIn,
    PublicTicketIn,
    PublicTicketOut,
)
from ticketing import (
    InvalidInput,
    NotFound,
    Notice,
    Ticket,
    TicketIn,
    confirm_notice,
    evaluate,
    get_ticket_by_number,
    is_mainland_mobile,
    issued_acceptance,
    issued_tokens,
    notice_for_evaluation,
    submit,
)

router = APIRouter(
    prefix="/public",
    tags=["public"],
    dependencies=[Depends(public_limit)],
    route_class=TransactionRoute,
)
ACTOR = "public"


@router.post(
    "/tickets",
    name="public.tickets.create",
    status_code=201,
    response_model=PublicTicketOut,
    responses=responses(413, 422, 429),
)
def submit_public(
    body: PublicTicketIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=100,
            description="a repeat of the same submission with this key (a double click, a retry) "
            "answers the first ticket; no second ticket, no second SMS",
        ),
    ] = None,
) -> PublicTicketOut:
    """Submit a matter from the public web form or mobile app. Returns the ticket number, the
    acceptance notice's confirm token and the submitter's evaluation token."""
    limit = settings.public_max_content_chars
    if len(body.content) > limit:
        raise InvalidInput(
            f"诉求内容不能超过 {limit} 个字",
            code="content_too_long",
            field="content",
            max_chars=limit,
        )
    ticket = submit(
        session,
        TicketIn(**body.model_dump(), send_notice=True),
        settings=settings,
        actor=ACTOR,
        idempotency_key=idempotency_key,
    )
    # the notice this submission created, as it was created (not read back); a repeat of an
    # earlier submission (its Idempotency-Key) created none: that one's notice, without tokens
    notice = (
        issued_acceptance(session, ticket.id or 0)
        or session.exec(
            select(Notice)
            .where(Notice.ticket_id == ticket.id, Notice.kind == "acceptance")
            .order_by(col(Notice.id))
        ).first()
    )
    tokens = issued_tokens(session, notice.id or 0) if notice else None  # loaded: id set
    request.app.state.metrics.tickets_created.labels(ticket.channel).inc()
    return PublicTicketOut(
        number=ticket.number,
        status=ticket.status,
        deadline_at=ticket.deadline_at,
        notice_token=tokens.confirm if tokens else None,
        evaluation_token=tokens.evaluation if tokens else None,
        sms_sent=is_mainland_mobile(ticket.submitter_phone),
        notice=notice.sent_body if notice else None,
    )


@router.post(
    "/notices/{token}/confirm",
    name="public.notices.confirm",
    response_model=NoticeConfirmOut,
    responses=responses(404, 422, 429),
)
def confirm(
    session: SessionDep, token: str = Path(min_length=1, max_length=64)
) -> NoticeConfirmOut:
    """The submitter confirms receipt of the acceptance notice (idempotent)."""
    notice = confirm_notice(session, token)
    ticket = session.get(Ticket, notice.ticket_id)
    if ticket is None:  # a notice's ticket is never deleted (foreign key)
        raise ApiError(404, "工单不存在", code="not_found")
    return NoticeConfirmOut(ticket_number=ticket.number, confirmed_at=notice.confirmed_at)


@router.post(
    "/tickets/{number}/evaluation",
    name="public.tickets.evaluate",
    status_code=201,
    response_model=EvaluationOut,
    responses=responses(404, 409, 422, 429),
)
def evaluate_public(
    number: str,
    body: PublicEvaluationIn,
    session: SessionDep,
    settings: SettingsDep,
    token: str | None = Query(default=None, max_length=64, description="the link's token"),
) -> EvaluationOut:
    """The submitter rates process, timeliness and result, authorised by the ticket's evaluation
    token (body or the link's ?token=). A wrong token answers 404 like an unknown ticket. The
    submitter's rating supersedes one staff recorded on the caller's behalf (回访)."""
    ticket = get_ticket_by_number(session, number)
    given = body.evaluation_token or token
    if not given or notice_for_evaluation(session, ticket, given) is None:
        raise NotFound(f"未找到工单：{number}", field="number")
    ev = evaluate(
        session,
        settings,
        ticket,
        process=body.process,
        timeliness=body.timeliness,
        result=body.result,
        comment=body.comment,
        actor=ACTOR,
        source="submitter",
        channel="link",
    )
    session.flush()
    return EvaluationOut.model_validate(ev)
