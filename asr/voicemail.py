"""After-hours voicemail → ticket: transcript as content, classification (with the spotted keywords),
urgency, acceptance notice + SMS (all by ticketing.intake.submit, channel "voicemail") and a
CallbackTask due at the next working-day opening (ticketing.promise_callback, the same promise
the AMI bridge and the Twilio front make).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from config.settings import Settings
from recordings import Recording
from ticketing import InvalidInput, Ticket, mask_phone, normalise_phone, promise_callback

ACTOR = "asr"
NO_SPEECH = "（语音留言未识别出文字，请收听录音后回拨）"


def _phone(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalise_phone(raw)
    except InvalidInput:
        return None  # anonymous / withheld / junk caller id: no SMS, no callback number


def create_voicemail_ticket(
    session: Session,
    settings: Settings,
    rec: Recording,
    *,
    text: str,
    keywords: list[str],
    transcript_id: int | None,
) -> Ticket:
    """In the caller's transaction: ticket (idempotent on call id), link, callback task."""
    from ticketing import TicketIn, submit

    phone = _phone(rec.caller_phone)
    call_id = rec.call_id or f"recording-{rec.id}"
    channel_data: dict[str, Any] = {
        "call_id": call_id,
        "recording_id": rec.id,
        "transcript_id": transcript_id,
        "keywords": keywords,
        "duration_s": rec.duration_s,
    }
    if rec.caller_phone and not phone:
        channel_data["caller_number_raw"] = rec.caller_phone[:32]
    ticket = submit(
        session,
        TicketIn(
            channel="voicemail",
            content=text.strip() or NO_SPEECH,
            submitter_phone=phone,
            submitter_name=(rec.meta or {}).get("caller_name"),
            channel_data=channel_data,
        ),
        settings=settings,
        actor=ACTOR,
    )
    rec.ticket_id = ticket.id
    session.add(rec)
    if phone:
        promise_callback(
            session,
            settings,
            phone=phone,
            reason="voicemail",
            call_id=call_id,
            ticket_id=ticket.id,
            note=f"语音留言回拨（{mask_phone(phone)}）",
            actor=ACTOR,
        )
    session.flush()
    return ticket
