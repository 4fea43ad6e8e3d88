"""Callback promises (回访/回拨): abandoned calls, after-hours voicemails, agent follow-ups.

One function for every front (AMI bridge, Twilio, voicemail transcription) so a call gets at
most one promise per reason, however many times its events or jobs are replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from config.settings import Settings
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
