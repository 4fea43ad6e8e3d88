"""After-hours voicemail → ticket: transcript as content, classification (with the spotted keywords),
urgency, acceptance notice + SMS (intake, channel "voicemail") and a CallbackTask due at the next
working-day opening: ticketing.file_call, the call-to-ticket service the AMI bridge and the Twilio
front use too.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from config.settings import Settings
from recordings import Recording
from ticketing import Ticket, TicketIn, caller_phone, file_call, mask_phone

ACTOR = "asr"
NO_SPEECH = "（语音留言未识别出文字，请收听录音后回拨）"


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
    phone = caller_phone(rec.caller_phone)
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
    ticket = file_call(
        session,
        settings,
        TicketIn(
            channel="voicemail",
            content=text.strip() or NO_SPEECH,
            submitter_phone=phone,
            submitter_name=(rec.meta or {}).get("caller_name"),
            channel_data=channel_data,
        ),
        actor=ACTOR,
        callback="voicemail",
        note=f"语音留言回拨（{mask_phone(phone)}）" if phone else None,
    )
    rec.ticket_id = ticket.id
    session.add(rec)
    session.flush()
    return ticket
