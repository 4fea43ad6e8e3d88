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
- Who gave it and how: `source` submitter (channel link or sms) or staff (channel callback: an
  agent's 回访 on the caller's behalf), and `submitted_by` (the username, or "public").
- A staff-recorded evaluation does not lock the submitter out: the submitter may still rate the
  same round once, and the submitter's rating supersedes the staff one (the staff row is kept,
  marked `superseded`). When the staff rating had closed the ticket and the submitter is
  unsatisfied, the ticket is reopened; when the staff rating had already reopened it, the follow-up
  stands and only the record is superseded. Staff cannot record over a submitter's rating (409).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing import events
from ticketing.errors import Conflict, InvalidInput
from ticketing.lifecycle import TICKET_LABELS, lock_ticket, round_suborders, transition_ticket
from ticketing.models import (
    Department,
    Evaluation,
    EvaluationChannel,
    EvaluationSource,
    Rating,
    SubOrderStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from ticketing.sla import deadline_for
from ticketing.submitter_notices import tell_reopened
from ticketing.text import normalise_text

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
    v = normalise_text(value)
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
    **kw: Any,
) -> Evaluation:
    """Record an evaluation (see `record_evaluation`), then its §15 follow-up: 重办 on 不满意,
    a 回访 task, 督办 after too many rounds (ticketing.followup), for every channel alike."""
    from ticketing.followup import after_evaluation

    ev = record_evaluation(session, settings, ticket, **kw)
    after_evaluation(session, settings, ev)
    return ev


def record_evaluation(
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
    source: EvaluationSource | str = EvaluationSource.submitter,
    channel: EvaluationChannel | str = EvaluationChannel.link,
) -> Evaluation:
    """Record an evaluation of the current round (or the submitter's over a staff-recorded one);
    close or reopen the ticket."""
    p = parse_rating(process, "process")
    t = parse_rating(timeliness, "timeliness")
    r = parse_rating(result, "result")
    comment = _clean(comment, "comment", "评价意见", 2000)
    person = _clean(responsible_person, "responsible_person", "责任人", 100)
    overall = overall_rating(p, t, r)

    src = EvaluationSource(source)
    chan = EvaluationChannel(channel)
    ticket = lock_ticket(session, ticket.id)
    rows = list(
        session.exec(
            select(Evaluation).where(
                Evaluation.ticket_id == ticket.id, Evaluation.round >= ticket.round - 1
            )
        )
    )
    superseding = None
    if src == EvaluationSource.submitter:
        superseding = _staff_to_supersede(ticket, rows)
    round_no = superseding.round if superseding is not None else ticket.round
    if any(
        e.round == round_no and (src == EvaluationSource.staff or e.source == src) for e in rows
    ):
        raise _already(ticket, round_no)
    if superseding is None and ticket.status != TicketStatus.resolved:
        raise Conflict(
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”，"
            "只有已办结的工单可以评价",
            code="illegal_transition",
            current=ticket.status,
        )
    was_direct = ticket.dispatch_mode == "direct"  # 直接答复 (ticketing.direct_answer)
    if overall == Rating.unsatisfied and person is None:
        person = default_responsible(session, ticket)

    ev = Evaluation(
        ticket_id=ticket.id,  # type: ignore[arg-type]  # a stored ticket: id set
        round=round_no,
        process=p,
        timeliness=t,
        result=r,
        overall=overall,
        comment=comment,
        responsible_person=person,
        submitted_by=actor[:64],
        source=src,
        channel=chan,
        created_at=utcnow(),
    )
    # The ticket's row lock (lock_ticket above) makes the check above final; the unique key is a
    # backstop. No savepoint around it (two more round trips on every evaluation): a refusal ends
    # the caller's transaction anyway (a request's; the default-satisfied batch of
    # ticketing.followup wraps each evaluation in a savepoint of its own).
    session.add(ev)
    try:
        session.flush()
    except IntegrityError:
        raise _already(ticket, round_no) from None
    if superseding is not None:
        superseding.superseded = True
        session.add(superseding)
    events.record(
        session,
        ticket.id,
        actor,
        "evaluated",
        round=round_no,
        source=src,
        channel=chan,
        supersedes=superseding.id if superseding is not None else None,
        process=p,
        timeliness=t,
        result=r,
        overall=overall,
        comment=comment,
        responsible_person=person,
    )

    if superseding is not None:
        # the ticket already moved on the staff rating: reopen it only when that rating closed it
        # and the submitter is unsatisfied; a follow-up already under way stands
        if overall != Rating.unsatisfied or ticket.status != TicketStatus.closed:
            return ev
    elif overall != Rating.unsatisfied:
        transition_ticket(session, ticket, TicketStatus.closed, actor=actor, action="closed")
        if was_direct:
            _after_direct_answer(session, settings, ticket, overall)
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
    tell_reopened(session, settings, ticket)  # 重办: the new committed deadline
    if was_direct:  # 不满意 with a direct answer: it becomes a dispatched ticket
        _after_direct_answer(session, settings, ticket, overall)
    return ev


def _after_direct_answer(
    session: Session, settings: Settings, ticket: Ticket, overall: str
) -> None:
    from ticketing.direct_answer import after_evaluation

    after_evaluation(session, settings, ticket, overall)


def _already(ticket: Ticket, round_no: int) -> Conflict:
    return Conflict(
        f"工单 {ticket.number} 第 {round_no} 轮已评价，不能重复评价",
        code="already_evaluated",
        round=round_no,
    )


def _staff_to_supersede(ticket: Ticket, rows: list[Evaluation]) -> Evaluation | None:
    """The staff-recorded evaluation a submitter's rating would supersede: the live staff row of
    the round that closed the ticket (same round) or reopened it (the previous round), with no
    submitter rating of that round yet. None when the submitter rates a resolved ticket."""
    if ticket.status == TicketStatus.resolved:
        return None
    round_no = ticket.round if ticket.status == TicketStatus.closed else ticket.round - 1
    staff = [
        e
        for e in rows
        if e.round == round_no and e.source == EvaluationSource.staff and not e.superseded
    ]
    return staff[0] if staff else None


def submitter_may_rate(session: Session, ticket: Ticket) -> bool:
    """Whether the submitter's own rating would be taken now (the rules of `evaluate`): a
    resolved ticket not yet rated by the submitter this round, or one a staff-recorded rating
    closed or reopened that the submitter has not rated."""
    rows = list(
        session.exec(
            select(Evaluation).where(
                Evaluation.ticket_id == ticket.id, Evaluation.round >= ticket.round - 1
            )
        )
    )
    if ticket.status == TicketStatus.resolved:
        return not any(
            e.round == ticket.round and e.source == EvaluationSource.submitter for e in rows
        )
    if ticket.status not in (TicketStatus.closed, TicketStatus.reopened):
        return False
    staff = _staff_to_supersede(ticket, rows)
    return staff is not None and not any(
        e.round == staff.round and e.source == EvaluationSource.submitter for e in rows
    )
