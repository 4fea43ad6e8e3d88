"""Satisfaction evaluation (§15): 满意 / 基本满意 / 不满意 on process, timeliness and result.

- Only a resolved ticket can be evaluated, once per round (unique (ticket_id, round); a concurrent
  duplicate is a Conflict, never a 500).
- overall = the worst of the three ratings.
- satisfied / basically satisfied → the ticket is closed.
- unsatisfied → the ticket is reopened for follow-up: round + 1, reopen_count + 1, status
  reopened (back to the dispatcher, dispatch_mode manual) and a fresh committed deadline from the
  SLA policy counted from now (the old one stays in the history). The follow-up is tracked to a
  responsible person: the submitter may name one, but usually cannot know who is responsible, so
  it is not required; when absent it defaults to the heads of the departments whose replies were
  rejected (the round's replied sub-orders, e.g. "税务局局长"). It is stored on the evaluation and
  on the ticket.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing import events
from ticketing.errors import Conflict, InvalidInput
from ticketing.lifecycle import TICKET_LABELS, lock_ticket, round_suborders, transition_ticket
from ticketing.models import (
    Department,
    Evaluation,
    Rating,
    SubOrderStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from ticketing.sla import deadline_for

RATING_WORDS: dict[str, Rating] = {
    "满意": Rating.satisfied,
    "基本满意": Rating.basic,
    "不满意": Rating.unsatisfied,
    **{r.value: r for r in Rating},
}
_SEVERITY = {Rating.satisfied: 0, Rating.basic: 1, Rating.unsatisfied: 2}
_FIELD_LABELS = {"process": "办理过程", "timeliness": "办结时效", "result": "办理结果"}


def parse_rating(value: Rating | str | None, field: str) -> Rating:
    r = RATING_WORDS.get(str(value).strip()) if value is not None else None
    if r is None:
        raise InvalidInput(
            f"{_FIELD_LABELS.get(field, field)}评价必须是“满意”“基本满意”或“不满意”",
            field=field,
            allowed=[r.value for r in Rating],
        )
    return r


def overall_rating(*ratings: Rating) -> Rating:
    return max(ratings, key=lambda r: _SEVERITY[r])


def _clean(value: str | None, field: str, label: str, max_len: int) -> str | None:
    v = (value or "").strip()
    if len(v) > max_len:
        raise InvalidInput(f"{label}不能超过 {max_len} 个字", field=field, max_length=max_len)
    return v or None


def default_responsible(session: Session, ticket: Ticket) -> str | None:
    """Heads of the departments that replied in the ticket's current round."""
    codes = [
        s.department_code
        for s in round_suborders(session, ticket)
        if s.status == SubOrderStatus.replied
    ]
    if not codes:
        return None
    depts = {
        d.code: d for d in session.exec(select(Department).where(col(Department.code).in_(codes)))
    }
    names: list[str] = []
    for c in dict.fromkeys(codes):
        d = depts.get(c)
        names.append(f"{d.name}{d.head_name or '负责人'}" if d else c)
    return "、".join(names)[:100]


def evaluate(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    *,
    process: Rating | str,
    timeliness: Rating | str,
    result: Rating | str,
    comment: str | None = None,
    responsible_person: str | None = None,
    actor: str,
) -> Evaluation:
    """Record the submitter's evaluation of the current round; close or reopen the ticket."""
    p = parse_rating(process, "process")
    t = parse_rating(timeliness, "timeliness")
    r = parse_rating(result, "result")
    comment = _clean(comment, "comment", "评价意见", 2000)
    person = _clean(responsible_person, "responsible_person", "责任人", 100)
    overall = overall_rating(p, t, r)

    ticket = lock_ticket(session, ticket.id)
    already = session.exec(
        select(Evaluation.id).where(
            Evaluation.ticket_id == ticket.id, Evaluation.round == ticket.round
        )
    ).first()
    if already is not None:
        raise Conflict(
            f"工单 {ticket.number} 第 {ticket.round} 轮已评价，不能重复评价",
            code="already_evaluated",
            round=ticket.round,
        )
    if ticket.status != TicketStatus.resolved:
        raise Conflict(
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”"
            f"({ticket.status})，只有已办结(resolved)的工单可以评价",
            code="illegal_transition",
            current=ticket.status,
        )
    if overall == Rating.unsatisfied and person is None:
        person = default_responsible(session, ticket)

    ev = Evaluation(
        ticket_id=ticket.id,  # type: ignore[arg-type]  # a stored ticket: id set
        round=ticket.round,
        process=p,
        timeliness=t,
        result=r,
        overall=overall,
        comment=comment,
        responsible_person=person,
        submitted_by=actor[:64],
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(ev)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"工单 {ticket.number} 第 {ticket.round} 轮已评价，不能重复评价",
            code="already_evaluated",
            round=ticket.round,
        ) from None
    events.record(
        session,
        ticket.id,
        actor,
        "evaluated",
        round=ticket.round,
        process=p,
        timeliness=t,
        result=r,
        overall=overall,
        comment=comment,
        responsible_person=person,
    )

    if overall != Rating.unsatisfied:
        transition_ticket(session, ticket, TicketStatus.closed, actor=actor, action="closed")
        return ev

    previous_deadline = ticket.deadline_at
    deadline, basis = deadline_for(settings, ticket.category, ticket.urgency, utcnow())
    old_round = ticket.round
    ticket.round = old_round + 1
    ticket.reopen_count = (ticket.reopen_count or 0) + 1
    ticket.responsible_person = person
    ticket.dispatch_mode = "manual"
    ticket.deadline_at = deadline
    ticket.sla_basis = basis
    transition_ticket(
        session,
        ticket,
        TicketStatus.reopened,
        actor=actor,
        action="reopened",
        previous_round=old_round,
        round=ticket.round,
        reopen_count=ticket.reopen_count,
        responsible_person=person,
        previous_deadline=previous_deadline,
        deadline=deadline,
    )
    return ev
