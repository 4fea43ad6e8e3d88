"""Appeals (申诉/免责): a department's handler asks that one ticket not count in one indicator of
one month; an admin accepts or rejects it with a note. Who and when are kept on the row. An
accepted appeal takes that (department, ticket) out of that indicator — numerator and
denominator —: the month's cached figures are invalidated and computed again by a job
(ticketing.assessment.cache). One appeal per month, department, indicator and ticket: a rejected
one is not filed again. Filing and deciding are written on the ticket's history too
("assessment_appeal_filed" / "assessment_appeal_decided": who, the indicator, the decision and
the reason), where whoever opens the ticket sees them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from config.settings import Settings
from ticketing.assessment import cache
from ticketing.assessment.indicators import INDICATORS
from ticketing.assessment.models import AppealStatus, AssessmentAppeal
from ticketing.assessment.periods import parse_period
from ticketing.assessment.tracing import in_indicator
from ticketing.errors import Conflict, InvalidInput, NotFound
from ticketing.events import record
from ticketing.models import Ticket, utcnow
from ticketing.text import normalise_text

STATUS_LABELS = {
    AppealStatus.pending: "待审核",
    AppealStatus.accepted: "已采纳",
    AppealStatus.rejected: "已驳回",
}


def _text(value: str | None, field: str, label: str, *, required: bool) -> str | None:
    v = normalise_text(value)
    if required and not v:
        raise InvalidInput(f"请填写{label}", field=field)
    if len(v) > 1000:
        raise InvalidInput(f"{label}不能超过 1000 个字", field=field, max_length=1000)
    return v or None


def file_appeal(
    session: Session,
    settings: Settings,
    *,
    month: str,
    department: str,
    indicator: str,
    ticket_number: str,
    reason: str,
    actor: str,
) -> AssessmentAppeal:
    """File an appeal; the ticket must be one of the indicator's rows for that department and
    month (what the drill-down lists)."""
    period = parse_period(settings, month)
    if period.kind != "month":
        raise InvalidInput("申诉按月提出：考核期应为 2027-01 这样的月份", field="month")
    if indicator not in INDICATORS:
        raise InvalidInput(f"未知考核指标：{indicator}", field="indicator")
    indicator = INDICATORS[indicator].appeal_under  # 超期件数 is appealed as 按时办结率
    why = _text(reason, "reason", "申诉理由", required=True)
    ticket = session.execute(
        select(Ticket).where(col(Ticket.number) == ticket_number.strip())
    ).scalar_one_or_none()
    if ticket is None or ticket.id is None:
        raise InvalidInput(f"未找到工单：{ticket_number}", field="ticket_number")
    if not in_indicator(session, settings, period, department, indicator, ticket.id):
        raise InvalidInput(
            f"工单 {ticket.number} 不在本部门 {period.label}“{INDICATORS[indicator].label}”的统计范围内",
            field="ticket_number",
        )
    appeal = AssessmentAppeal(
        month=period.key,
        department_code=department,
        indicator=indicator,
        ticket_id=ticket.id,
        reason=why or "",
        status=AppealStatus.pending.value,
        filed_by=actor[:64],
        filed_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(appeal)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"工单 {ticket.number} 在本月“{INDICATORS[indicator].label}”已提出过申诉",
            code="appeal_exists",
        ) from None
    _history(session, appeal, "assessment_appeal_filed", actor, reason=appeal.reason)
    return appeal


def _history(
    session: Session, appeal: AssessmentAppeal, action: str, actor: str, **detail: Any
) -> None:
    """The appeal's step on its ticket's history (the append-only event log)."""
    record(
        session,
        appeal.ticket_id,
        actor[:64],
        action,
        appeal_id=appeal.id,
        month=appeal.month,
        department=appeal.department_code,
        indicator=appeal.indicator,
        indicator_label=INDICATORS[appeal.indicator].label,
        **detail,
    )


def decide_appeal(
    session: Session,
    settings: Settings,
    appeal_id: int,
    *,
    accept: bool,
    note: str | None,
    actor: str,
) -> AssessmentAppeal:
    """Accept or reject a pending appeal, once, with a note (required when rejecting). An
    accepted one changes its month's figures: the month's cache is invalidated and recomputed
    after the commit (a rejected one changes nothing)."""
    appeal = session.execute(
        select(AssessmentAppeal).where(col(AssessmentAppeal.id) == appeal_id).with_for_update()
    ).scalar_one_or_none()
    if appeal is None:
        raise NotFound(f"申诉不存在：{appeal_id}", appeal_id=appeal_id)
    if appeal.status != AppealStatus.pending:
        raise Conflict(
            f"申诉 {appeal_id} 已{STATUS_LABELS[AppealStatus(appeal.status)]}，不能再次审核",
            code="illegal_transition",
            current=appeal.status,
        )
    why = _text(note, "note", "审核意见", required=not accept)
    appeal.status = (AppealStatus.accepted if accept else AppealStatus.rejected).value
    appeal.decided_by = actor[:64]
    appeal.decided_at = utcnow()
    appeal.decision_note = why
    session.add(appeal)
    session.flush()
    _history(
        session, appeal, "assessment_appeal_decided", actor, decision=appeal.status, reason=why
    )
    if accept:
        cache.invalidate(session, settings, appeal.month)
    return appeal


def list_appeals(
    session: Session,
    *,
    month: str | None = None,
    department: str | None = None,
    status: str | None = None,
    limit: int = 500,
) -> list[tuple[AssessmentAppeal, str]]:
    """(appeal, ticket number), newest first."""
    q = (
        select(AssessmentAppeal, col(Ticket.number))
        .join(Ticket, col(Ticket.id) == col(AssessmentAppeal.ticket_id))
        .order_by(col(AssessmentAppeal.filed_at).desc(), col(AssessmentAppeal.id).desc())
        .limit(limit)
    )
    if month:
        q = q.where(col(AssessmentAppeal.month) == month)
    if department:
        q = q.where(col(AssessmentAppeal.department_code) == department)
    if status:
        q = q.where(col(AssessmentAppeal.status) == status)
    return [(a, n) for a, n in session.execute(q).all()]


def get_appeal(session: Session, appeal_id: int) -> AssessmentAppeal:
    a = session.get(AssessmentAppeal, appeal_id)
    if a is None:
        raise NotFound(f"申诉不存在：{appeal_id}", appeal_id=appeal_id)
    return a
