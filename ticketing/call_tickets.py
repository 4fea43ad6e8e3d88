"""A call becomes a ticket plus a callback promise: the one service every telephony front calls.

The AMI bridge (callcenter/ami/calls.py and its spool sweep), voicemail transcription
(asr/voicemail.py) and the Twilio front (ivr/twiml.py) each describe their call as a TicketIn;
`file_call` files it through intake (idempotent on channel_data.call_id: a replayed call returns
its ticket) and, when the caller left a real number and the call owes one, promises the callback
(ticketing.callbacks: at most one per call and reason). The caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from config.settings import Settings
from ticketing.callbacks import promise_callback
from ticketing.intake import submit
from ticketing.models import Ticket
from ticketing.schemas import TicketIn


def file_call(
    session: Session,
    settings: Settings,
    data: TicketIn,
    *,
    actor: str,
    callback: str | None = None,
    due_at: datetime | None = None,
    note: str | None = None,
    callback_actor: str | None = None,
    savepoint: bool = False,
) -> Ticket:
    """The call's ticket (new, or the one already filed for its call_id), with the callback
    promised for reason `callback` when the caller's number is known.

    savepoint=True: the intake runs in a SAVEPOINT, so its refusal (a TicketingError, raised)
    leaves the caller's other rows (the call record) to commit."""
    if savepoint:
        with session.begin_nested():
            ticket = submit(session, data, settings=settings, actor=actor)
    else:
        ticket = submit(session, data, settings=settings, actor=actor)
    phone = data.submitter_phone
    if callback and phone:
        promise_callback(
            session,
            settings,
            phone=phone,
            reason=callback,
            call_id=data.channel_data.get("call_id"),
            ticket_id=ticket.id,
            due_at=due_at,
            note=note,
            actor=callback_actor or actor,
        )
    return ticket
