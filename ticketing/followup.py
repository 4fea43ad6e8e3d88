"""§15 evaluation follow-up: the rating request and its one reminder, 默认满意 where configured,
不满意 → 重办, and the 回访 (follow-up call) tasks for agents.

Hangs off the evaluation service (ticketing.evaluation.evaluate calls `after_evaluation`), so
every channel that rates (public link, SMS reply, an agent's 回访) gets the same follow-up:
- 不满意 → 重办: the matter goes back to the same departments (those that replied in the rated
  round) with the responsible person in the instructions and a new clock (the evaluation renewed
  the ticket's deadline; the new sub-orders start their accept and finish clocks). The 重办 round
  counter is ticket.reopen_count; at followup.redo_supervise_rounds (sla.yaml) the matter is
  raised to 督办 automatically (ticketing.escalation.raise_for_redo).
- A 回访 task (CallbackTask reason "revisit") on every 不满意 and on a configured sample of the
  other ratings (deterministic by ticket and round, so a replay samples the same), for agents to
  call the submitter and record the outcome (`record_revisit`).
- `followup_round` (the scheduled scan): a resolved ticket not rated after remind_after_days gets
  one reminder SMS with a fresh rating link; after default_after_days it is closed as 默认满意
  only when default_satisfied is true, recorded as source "default" / channel "timeout".
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from config.loader import load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.errors import Conflict, InvalidInput, NotFound, TicketingError
from ticketing.models import (
    CallbackTask,
    Evaluation,
    EvaluationChannel,
    Notice,
    OutboxMessage,
    Rating,
    SubOrder,
    SubOrderStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from ticketing.text import normalise_text

REVISIT = "revisit"
REVISIT_OUTCOMES = {
    "satisfied": "满意",
    "basically_satisfied": "基本满意",
    "unsatisfied": "不满意",
    "unreachable": "未接通",
}


def _cfg(settings: Settings) -> dict[str, Any]:
    return load_yaml(settings, "sla.yaml").get("followup") or {}


# ---------------------------------------------------------------- rating request / reminder


def _rating_sms(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    template_key: str,
    kind: str,
    *,
    enqueue: bool = True,
) -> Notice | None:
    """A notice with a fresh single-purpose rating token (stored as a digest, shown redacted),
    texted to a mainland mobile. None when the template is not configured."""
    from ticketing.notices import rating_notice
    from ticketing.phones import is_mainland_mobile

    cfg = load_yaml(settings, "notices.yaml")
    template = str(cfg.get(template_key) or "")
    if not template:
        return None
    notice, body = rating_notice(
        session, settings, ticket, template, template_key, {"number": ticket.number}, kind
    )
    outbox_id = None
    phone = ticket.submitter_phone
    if phone is not None and is_mainland_mobile(phone):
        outbox_id = _queue_sms(session, settings, phone, body, ticket.id, kind, enqueue=enqueue)
    events.record(
        session,
        ticket.id,
        "system",
        "notice_created",
        notice_id=notice.id,
        kind=kind,
        round=ticket.round,
        sms_outbox_id=outbox_id,
    )
    return notice


def _queue_sms(
    session: Session,
    settings: Settings,
    phone: str,
    body: str,
    ticket_id: int | None,
    kind: str,
    *,
    enqueue: bool,
) -> int | None:
    """send_sms when the settings are the caller's own (enqueue); else only the pending outbox
    row, which the scheduler's requeue_lost_work delivers (never enqueued with another process's
    settings)."""
    from ticketing.notify import send_sms
    from ticketing.phones import normalise_phone

    if enqueue:
        return send_sms(session, settings, phone, body, ticket_id=ticket_id, kind=kind).id
    msg = OutboxMessage(
        ticket_id=ticket_id, to_phone=normalise_phone(phone), body=body, kind=kind[:20]
    )
    session.add(msg)
    session.flush()
    return msg.id


def followup_round(
    session: Session, settings: Settings, now: datetime, *, limit: int = 500
) -> dict[str, int]:
    """Reminders and 默认满意 for resolved tickets not yet rated (the scan's job)."""
    from ticketing.evaluation import evaluate

    cfg = _cfg(settings)
    reminded = defaulted = 0
    remind_after = cfg.get("remind_after_days")
    if remind_after:
        cutoff = now - timedelta(days=float(remind_after))
        rows = session.exec(
            select(Ticket)
            .where(
                Ticket.status == TicketStatus.resolved,
                col(Ticket.resolved_at) <= cutoff,
                col(Ticket.dispatch_mode) != "direct",
            )
            .order_by(col(Ticket.resolved_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        for t in rows:
            already = session.exec(
                select(Notice.id).where(
                    Notice.ticket_id == t.id,
                    Notice.kind == "eval_reminder",
                    col(Notice.created_at) >= t.resolved_at,
                )
            ).first()
            if already is None and _rating_sms(
                session, settings, t, "evaluation_reminder_sms", "eval_reminder"
            ):
                reminded += 1
    default_after = cfg.get("default_after_days")
    if default_after and cfg.get("default_satisfied") is True:
        cutoff = now - timedelta(days=float(default_after))
        due = list(
            session.exec(
                select(Ticket)
                .where(Ticket.status == TicketStatus.resolved, col(Ticket.resolved_at) <= cutoff)
                .order_by(col(Ticket.resolved_at))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for t in due:
            try:
                with session.begin_nested():
                    evaluate(
                        session,
                        settings,
                        t,
                        process=Rating.satisfied,
                        timeliness=Rating.satisfied,
                        result=Rating.satisfied,
                        comment="默认满意：办结后逾期未评价",
                        actor="system",
                        source="default",
                        channel=EvaluationChannel.timeout,
                    )
                defaulted += 1
            except TicketingError:  # rated meanwhile: nothing to default
                continue
    return {"reminded": reminded, "defaulted": defaulted}


# ---------------------------------------------------------------- after an evaluation


def after_evaluation(session: Session, settings: Settings, ev: Evaluation) -> None:
    """The follow-up of one recorded evaluation (see the module rule)."""
    ticket = session.get(Ticket, ev.ticket_id)
    if ticket is None:
        return
    unsatisfied = ev.overall == Rating.unsatisfied
    if unsatisfied and ticket.status == TicketStatus.reopened:
        _redo(session, settings, ticket, ev)
    share = float(_cfg(settings).get("revisit_sample", 0))
    by_staff = ev.channel == EvaluationChannel.callback or ev.source == "default"
    if not by_staff and (unsatisfied or _sampled(ticket, ev.round, share)):
        _revisit_task(session, ticket, ev)


def _redo(session: Session, settings: Settings, ticket: Ticket, ev: Evaluation) -> None:
    """重办 to the departments that replied in the rated round, a new clock, the round counted."""
    from ticketing import dispatch as dispatching
    from ticketing.escalation import raise_for_redo

    codes = list(
        dict.fromkeys(
            session.exec(
                select(SubOrder.department_code)
                .where(
                    SubOrder.ticket_id == ticket.id,
                    SubOrder.round == ev.round,
                    SubOrder.status == SubOrderStatus.replied,
                )
                .order_by(col(SubOrder.id))
            )
        )
    )
    rounds = ticket.reopen_count or 0
    person = ticket.responsible_person or ev.responsible_person
    if codes:
        note = f"不满意重办（第 {rounds} 轮）；责任人：{person or '承办部门负责人'}"
        if ev.comment:
            note += f"；评价意见：{ev.comment}"
        try:
            with session.begin_nested():
                dispatching._dispatch(
                    session,
                    settings,
                    ticket,
                    codes,
                    actor="system",
                    mode="auto",
                    basis={"basis": "redo", "redo_round": rounds, "responsible_person": person},
                    instructions=note[:2000],
                    locked=True,
                )
        except TicketingError as e:
            events.record(
                session,
                ticket.id,
                "system",
                "manual_dispatch_required",
                reason=f"不满意重办未能自动派单：{e.message}",
                redo_round=rounds,
            )
        else:
            events.record(
                session,
                ticket.id,
                "system",
                "redo",
                redo_round=rounds,
                departments=codes,
                responsible_person=person,
                deadline=ticket.deadline_at,
            )
    limit = int(_cfg(settings).get("redo_supervise_rounds") or 0)
    if limit and rounds >= limit:
        raise_for_redo(session, settings, ticket, rounds)


def _sampled(ticket: Ticket, round_no: int, share: float) -> bool:
    if share <= 0:
        return False
    h = hashlib.sha256(f"{ticket.number}:{round_no}".encode()).digest()
    return int.from_bytes(h[:4], "big") / 2**32 < share


def _revisit_task(session: Session, ticket: Ticket, ev: Evaluation) -> CallbackTask | None:
    from ticketing.phones import normalise_phone

    if not ticket.submitter_phone:
        return None
    try:
        phone = normalise_phone(ticket.submitter_phone)
    except TicketingError:
        return None
    exists = session.exec(
        select(CallbackTask.id).where(
            CallbackTask.ticket_id == ticket.id,
            CallbackTask.reason == REVISIT,
            CallbackTask.call_id == f"eval:{ev.id}",
        )
    ).first()
    if exists is not None:
        return None
    task = CallbackTask(
        ticket_id=ticket.id,
        phone=phone,
        reason=REVISIT,
        call_id=f"eval:{ev.id}",  # one per evaluation (unique with the reason)
        due_at=utcnow(),
        note="不满意回访" if ev.overall == Rating.unsatisfied else "抽样回访",
    )
    session.add(task)
    session.flush()
    events.record(
        session,
        ticket.id,
        "system",
        "revisit_task_created",
        callback_id=task.id,
        evaluation_id=ev.id,
        overall=ev.overall,
    )
    return task


def revisit_tasks(
    session: Session, *, status: str = "open", limit: int = 200
) -> list[tuple[CallbackTask, Ticket]]:
    q = (
        select(CallbackTask, Ticket)
        .join(Ticket, col(Ticket.id) == col(CallbackTask.ticket_id))
        .where(CallbackTask.reason == REVISIT, CallbackTask.status == status)
        .order_by(col(CallbackTask.due_at), col(CallbackTask.id))
        .limit(limit)
    )
    return [(c, t) for c, t in session.exec(q)]


def record_revisit(
    session: Session, task_id: int, *, actor: str, outcome: str, note: str | None = None
) -> CallbackTask:
    """An agent's 回访 outcome (REVISIT_OUTCOMES), recorded on the task and the ticket."""
    if outcome not in REVISIT_OUTCOMES:
        raise InvalidInput(
            "回访结果必须是：" + "、".join(REVISIT_OUTCOMES.values()),
            field="outcome",
            allowed=list(REVISIT_OUTCOMES),
        )
    text = normalise_text(note)
    if len(text) > 900:
        raise InvalidInput("回访记录不能超过 900 个字", field="note", max_length=900)
    task = session.get(CallbackTask, task_id)
    if task is None or task.reason != REVISIT:
        raise NotFound(f"回访任务不存在：{task_id}", task_id=task_id)
    if task.status != "open":
        raise Conflict("该回访任务已完成", code="already_done", status=task.status)
    task.status, task.done_at, task.assigned_to = "done", utcnow(), actor[:64]
    task.attempts = (task.attempts or 0) + 1
    task.note = f"{REVISIT_OUTCOMES[outcome]}：{text}"[:1000] if text else REVISIT_OUTCOMES[outcome]
    session.add(task)
    events.record(
        session,
        task.ticket_id,
        actor,
        "revisit_done",
        callback_id=task.id,
        outcome=outcome,
        note=text or None,
    )
    return task
