"""After-hours voicemail → ticket: transcript as content, classification (with the spotted keywords),
urgency, acceptance notice + SMS (all by ticketing.intake.submit, channel "voicemail") and a
CallbackTask due at the next working-day opening.

Why the opening time is computed here: ivr/hours.py owns business hours, but asr may import only
config, recordings and ticketing (layering). `next_opening` is a small reading of the same
config/defaults/business_hours.yaml with chinese-calendar (statutory holidays, 调休 make-up days);
moving one shared function into ticketing would remove the duplication (noted for the lead).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from config.loader import load_yaml
from config.settings import Settings
from recordings import Recording
from ticketing import CallbackTask, InvalidInput, Ticket, mask_phone, normalise_phone, utcnow

ACTOR = "asr"
NO_SPEECH = "（语音留言未识别出文字，请收听录音后回拨）"


def _is_workday(d: date, cfg: dict[str, Any]) -> bool:
    iso = d.isoformat()
    if iso in {str(x) for x in cfg.get("closed_dates", []) or []}:
        return False
    if iso in {str(x) for x in cfg.get("open_dates", []) or []}:
        return True
    try:
        import chinese_calendar

        return bool(chinese_calendar.is_workday(d))
    except (NotImplementedError, ImportError):  # year beyond the calendar's data
        return d.weekday() < 5


def next_opening(settings: Settings, now_utc: datetime | None = None) -> datetime:
    """The next moment the hotline opens (naive UTC); `now` itself when it is open right now."""
    cfg = load_yaml(settings, "business_hours.yaml")
    tz = ZoneInfo(str(cfg.get("timezone") or settings.timezone))
    periods = [
        (time.fromisoformat(a), time.fromisoformat(b)) for a, b in cfg.get("periods") or []
    ] or [(time(8, 30), time(17, 30))]
    now = (now_utc or utcnow()).replace(tzinfo=UTC).astimezone(tz)
    for day_offset in range(0, 60):
        d = now.date() + timedelta(days=day_offset)
        if not _is_workday(d, cfg):
            continue
        for start, end in sorted(periods):
            opens = datetime.combine(d, start, tzinfo=tz)
            closes = datetime.combine(d, end, tzinfo=tz)
            if now < opens:
                return opens.astimezone(UTC).replace(tzinfo=None)
            if opens <= now < closes:
                return now.astimezone(UTC).replace(tzinfo=None)
    raise RuntimeError("no working day in the next 60 days: check business_hours.yaml")


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
        exists = session.exec(
            select(CallbackTask).where(
                CallbackTask.call_id == call_id, CallbackTask.reason == "voicemail"
            )
        ).first()
        if exists is None:
            session.add(
                CallbackTask(
                    ticket_id=ticket.id,
                    phone=phone,
                    reason="voicemail",
                    call_id=call_id,
                    due_at=next_opening(settings),
                    note=f"语音留言回拨（{mask_phone(phone)}）",
                )
            )
    session.flush()
    return ticket
