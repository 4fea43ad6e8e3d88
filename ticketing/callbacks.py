"""Callback promises (回访/回拨): abandoned calls, after-hours voicemails, agent follow-ups.

One function for every front (AMI bridge, Twilio, voicemail transcription) so a call gets at
most one promise per reason, however many times its events or jobs are replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from config.settings import Settings
from ticketing.errors import Conflict, InvalidInput, NotFound
from ticketing.events import record
from ticketing.hours import load_business_hours
from ticketing.models import CallbackTask, utcnow


def next_callback_time(settings: Settings, now: datetime | None = None) -> datetime:
    """Now when the hotline is open, else its next opening (naive UTC)."""
    aware = (now or utcnow()).replace(tzinfo=UTC)
    return load_business_hours(settings).next_opening(aware).astimezone(UTC).replace(tzinfo=None)


def promise_callback(
    session: Session,
    settings: Settings,
    *,
    phone: str,
    reason: str,
    call_id: str | None = None,
    ticket_id: int | None = None,
    due_at: datetime | None = None,
    note: str | None = None,
    actor: str = "system",
    assigned_to: str | None = None,
) -> tuple[CallbackTask, bool]:
    """The callback task for (call_id, reason), created once; returns (task, created).

    A task promised before its ticket existed (a voicemail call whose ticket the transcription
    job files) is linked to the ticket when the ticket's maker promises it again."""
    if call_id is not None:
        existing = _find(session, call_id, reason)
        if existing is not None:
            if existing.ticket_id is None and ticket_id is not None:
                existing.ticket_id = ticket_id
                session.add(existing)
                _promised(session, existing, actor)
            return existing, False
    task = CallbackTask(
        ticket_id=ticket_id,
        phone=phone,
        reason=reason,
        call_id=call_id,
        due_at=due_at or next_callback_time(settings),
        note=(note or "")[:1000] or None,
        assigned_to=assigned_to,
    )
    try:
        with session.begin_nested():  # a concurrent twin loses on the unique (call_id, reason)
            session.add(task)
    except IntegrityError:
        existing = _find(session, call_id, reason) if call_id is not None else None
        if existing is None:
            raise
        return existing, False
    if ticket_id is not None:
        _promised(session, task, actor)
    return task, True


def _promised(session: Session, task: CallbackTask, actor: str) -> None:
    record(
        session,
        task.ticket_id,
        actor,
        "callback_promised",
        reason=task.reason,
        due_at=task.due_at,
        callback_id=task.id,
    )


def _find(session: Session, call_id: str, reason: str) -> CallbackTask | None:
    return session.exec(
        select(CallbackTask).where(CallbackTask.call_id == call_id, CallbackTask.reason == reason)
    ).first()


# ---------------------------------------------------------------- agents' own callbacks
AGENT_REASON = "agent"  # an agent promised it during the call (console: 预约回访)
OUTCOMES = {"done": "已回访", "failed": "未联系上", "cancelled": "已取消"}
MAX_AHEAD_DAYS = 30


def schedule_callback(
    session: Session,
    settings: Settings,
    *,
    phone: str,
    call_id: str,
    due_at: datetime,
    note: str | None,
    actor: str,
    ticket_id: int | None = None,
    now: datetime | None = None,
) -> tuple[CallbackTask, bool]:
    """The agent's callback promise for the call (one per call: scheduling again moves it and
    keeps it the agent's). `due_at` naive UTC, not in the past, at most MAX_AHEAD_DAYS ahead."""
    now = now or utcnow()
    if due_at < now.replace(second=0, microsecond=0):
        raise InvalidInput("回访时间不能早于当前时间", field="due_at")
    if (due_at - now).days >= MAX_AHEAD_DAYS:
        raise InvalidInput(f"回访时间应在 {MAX_AHEAD_DAYS} 天以内", field="due_at")
    text = (note or "").strip()
    if len(text) > 1000:
        raise InvalidInput("回访备注不超过 1000 字", field="note")
    task, created = promise_callback(
        session,
        settings,
        phone=phone,
        reason=AGENT_REASON,
        call_id=call_id,
        ticket_id=ticket_id,
        due_at=due_at,
        note=text,
        actor=actor,
        assigned_to=actor,
    )
    if not created:
        if task.status != "open":
            raise Conflict("该来电的回访已处理，不能再改期", field="due_at")
        task.due_at, task.note, task.assigned_to = due_at, text or None, actor
        session.add(task)
        session.flush()
        if task.ticket_id is not None:
            record(session, task.ticket_id, actor, "callback_rescheduled", due_at=due_at,
                   callback_id=task.id)  # fmt: skip
    return task, created


def callbacks_for(session: Session, username: str, *, limit: int = 50) -> list[CallbackTask]:
    """Open callbacks an agent should make, soonest first: the ones they promised themselves and
    the unassigned ones the hotline owes (abandoned calls, after-hours voicemails)."""
    return list(
        session.exec(
            select(CallbackTask)
            .where(
                CallbackTask.status == "open",
                or_(CallbackTask.assigned_to == username, col(CallbackTask.assigned_to).is_(None)),
            )
            .order_by(col(CallbackTask.due_at), col(CallbackTask.id))
            .limit(limit)
        ).all()
    )


def finish_callback(
    session: Session, callback_id: int, outcome: str, *, actor: str, note: str | None = None
) -> CallbackTask:
    """Close an open callback as done / failed (not reached) / cancelled, on the record."""
    if outcome not in OUTCOMES:
        raise InvalidInput("请选择回访结果", field="outcome")
    task = session.exec(
        select(CallbackTask).where(CallbackTask.id == callback_id).with_for_update()
    ).first()
    if task is None:
        raise NotFound("回访任务不存在", callback_id=callback_id)
    if task.status != "open":
        raise Conflict("该回访任务已处理", callback_id=callback_id)
    if task.assigned_to not in (None, actor):
        raise NotFound("回访任务不存在", callback_id=callback_id)  # another agent's: not shown
    task.status, task.done_at, task.attempts = outcome, utcnow(), task.attempts + 1
    task.assigned_to = actor
    if note:
        task.note = ((task.note + "\n") if task.note else "") + note.strip()[:500]
        task.note = task.note[:1000]
    session.add(task)
    session.flush()
    if task.ticket_id is not None:
        record(session, task.ticket_id, actor, "callback_" + outcome, callback_id=task.id)
    return task
