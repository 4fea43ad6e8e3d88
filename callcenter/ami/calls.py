"""Finished call → CallRecord + its ticket (+ a callback task when the caller was left waiting).

One transaction per call, idempotent on call_id (Linkedid): the journal may hand the same record
over again after a crash or a DB outage, and nothing is written twice. A transferred call has one
Linkedid, hence one record and one ticket.

The ticket is the one the agent filed during the call (channel variable TICKET_NUMBER, or the
API hook `callcenter.live.link_ticket`), or a new hotline ticket through ticketing.file_call, the
call-to-ticket service (intake dedupes on call_id, so a retried record never opens a second ticket).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from callcenter import call_audio
from callcenter.models import CallRecord
from config.database import session_scope
from config.settings import Settings
from ticketing import (
    Ticket,
    TicketIn,
    TicketingError,
    caller_phone,
    file_call,
    mask_phone,
    promise_callback,
)

log = logging.getLogger(__name__)

ACTOR = "ami-bridge"
DISPOSITION_LABEL = {
    "answered": "已接通",
    "abandoned": "排队中挂断",
    "voicemail": "非工作时间留言",
    "transferred": "已转接",
}


def _dt(ts: float | None) -> datetime | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def _clip(v: Any, n: int) -> Any:
    return v[:n] if isinstance(v, str) else v


def fit_columns(model: type[SQLModel], **values: Any) -> Any:
    """The row with every string cut to its column's length: what the PBX sends (caller names,
    queue names, file names) is not ours to refuse, and one over-long value must not make a call
    record unstorable (its journal entry would be retried forever)."""
    cols = model.__table__.c  # type: ignore[attr-defined]
    for k, v in values.items():
        length = getattr(cols[k].type, "length", None) if k in cols else None
        if length and isinstance(v, str) and len(v) > length:
            values[k] = v[:length]
    return model(**values)


def masked(raw: str) -> str:
    e164 = caller_phone(raw)
    if e164:
        return mask_phone(e164)
    return (raw[:3] + "****" + raw[-2:]) if len(raw) > 6 else "****"


def ticket_content(rec: dict[str, Any]) -> str:
    """The hotline ticket's text until an agent or the transcript adds more."""
    parts = [f"热线来电（{DISPOSITION_LABEL.get(rec['disposition'], rec['disposition'])}）"]
    if rec.get("ivr_path"):
        parts.append(f"语音导航选择：{rec['ivr_path']}")
    if rec.get("queue"):
        parts.append(f"队列：{rec['queue']}")
    if rec.get("agent_name"):
        parts.append(f"坐席：{rec['agent_name']}")
    if rec.get("talk_seconds"):
        parts.append(f"通话{rec['talk_seconds']}秒")
    if rec.get("vm_no_message") and rec["disposition"] != "voicemail":
        parts.append("来电人进入留言信箱但未留言，请回拨")
    elif rec["disposition"] == "abandoned":
        parts.append("来电人排队时挂断，请回拨")
    if rec.get("unknown"):  # reconciled after the fact (callcenter/ami/reconcile.py)
        parts.append(f"未知：{rec['unknown']}")
    if rec["disposition"] == "voicemail":
        parts.append("来电人已留言，请回拨")
    return "；".join(parts) + "。"


def reached_service(rec: dict[str, Any]) -> bool:
    """A call is a matter once the caller chose in the menu, queued, reached an agent, left a
    voicemail, or an agent named a ticket; a hang-up during the greeting is only recorded."""
    return bool(
        rec.get("ivr_choices")
        or rec.get("ivr_path")
        or rec.get("queue")
        or rec.get("agent")
        or rec.get("ticket_number")
        or rec.get("disposition") == "voicemail"
        or rec.get("vm_no_message")
    )


def ticket_for_call(
    session: Session,
    settings: Settings,
    rec: dict[str, Any],
    phone: str | None,
    *,
    callback: str | None = None,
) -> tuple[int | None, str | None, str | None]:
    """(ticket_id, number, error). The agent's ticket when named, else a new hotline ticket
    (with the callback promised for reason `callback`, when given and the number is known)."""
    error = None
    number = (rec.get("ticket_number") or "").strip().upper()
    if number:
        t = session.exec(select(Ticket).where(Ticket.number == number)).first()
        if t is not None:
            return t.id, t.number, None
        error = f"坐席填写的工单号不存在：{number[:40]}"

    channel = "voicemail" if rec["disposition"] == "voicemail" else "hotline"
    try:
        data = TicketIn(
            channel=channel,
            content=ticket_content(rec)[:2000],
            category=rec.get("category") or None,
            submitter_phone=phone,
            submitter_name=_clip(rec.get("caller_name"), 100) or None,
            channel_data={
                "call_id": rec["call_id"],
                "ivr_path": _clip(rec.get("ivr_path"), 200) or "",
                "queue": _clip(rec.get("queue"), 64) or "",
                "recording": _clip(rec.get("recording"), 500) or "",
                "disposition": rec["disposition"],
            },
            send_notice=rec["disposition"] != "abandoned",
        )
    except ValidationError as e:  # what the PBX sent cannot make a ticket; the call is kept
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return None, None, f"建单失败：来电数据不合规（{where}: {first.get('msg', '')}）"[:500]
    try:
        ticket = file_call(session, settings, data, actor=ACTOR, callback=callback, savepoint=True)
    except TicketingError as e:  # not transient: keep the call record, say why
        return None, None, ((f"{error}；" if error else "") + f"建单失败：{e.message}")[:500]
    return ticket.id, ticket.number, error


def persist_call(engine: Engine, settings: Settings, rec: dict[str, Any], server: str) -> str:
    """Store one finished call. Returns "stored" or "duplicate"; DB errors propagate (retry)."""
    with session_scope(engine) as s:
        existing = s.exec(select(CallRecord).where(CallRecord.call_id == rec["call_id"])).first()
        if existing is not None:
            return "duplicate"
        phone = caller_phone(rec.get("caller") or "")
        awaiting = (
            rec["disposition"] == "voicemail"
            and not (rec.get("ticket_number") or "").strip()
            and call_audio.defers_voicemail_ticket(settings, server)
        )
        if awaiting:  # the transcription job files it (callcenter/call_audio.py)
            ticket_id, number, error = None, None, None
        elif reached_service(rec):
            ticket_id, number, error = ticket_for_call(s, settings, rec, phone)
        else:
            ticket_id, number, error = None, None, "未进入语音导航或人工服务，未建单"
        row = fit_columns(
            CallRecord,
            call_id=rec["call_id"],
            server=server,
            caller_phone=phone or (rec.get("caller") or None),
            caller_name=rec.get("caller_name") or None,
            started_at=_dt(rec["started"]),
            answered_at=_dt(rec.get("answered")),
            ended_at=_dt(rec.get("ended")),
            ivr_path=rec.get("ivr_path") or None,
            ivr_choices=rec.get("ivr_choices") or [],
            category=rec.get("category"),
            queue=rec.get("queue") or None,
            wait_seconds=rec.get("wait_seconds"),
            agent=rec.get("agent") or None,
            agent_name=rec.get("agent_name") or None,
            talk_seconds=int(rec.get("talk_seconds") or 0),
            hold_seconds=round(rec.get("hold_seconds") or 0),
            disposition=rec["disposition"],
            recording_path=rec.get("recording") or None,
            hangup_cause=rec.get("hangup_cause") or None,
            ticket_id=ticket_id,
            ticket_number=number,
            ticket_error=error,
            extra={
                k: rec.get(k)
                for k in (
                    *("queues", "agents", "recordings", "voicemail_box", "ended_by", "channels"),
                    *("ivr_fallback", "restored", "vm_no_message", "unknown", "source"),
                    "answer_estimated",
                )
                if rec.get(k)
            }
            | ({"awaiting_voicemail_ticket": True} if awaiting else {}),
        )
        s.add(row)
        s.flush()
        call_audio.file_call_audio(s, settings, row, rec)
        reason = None
        if rec["disposition"] == "abandoned" and rec.get("queued_abandon"):
            reason = "abandoned"
        elif rec["disposition"] == "voicemail" or rec.get("vm_no_message"):
            reason = "voicemail"
        if reason and phone:
            promise_callback(
                s,
                settings,
                phone=phone,
                reason=reason,
                call_id=rec["call_id"],
                ticket_id=row.ticket_id,
                note=ticket_content(rec),
                actor=ACTOR,
            )
    log.info(
        "call %s stored: %s from %s, ticket %s",
        rec["call_id"],
        rec["disposition"],
        masked(rec.get("caller") or ""),
        row.ticket_number or "-",
    )
    return "stored"
