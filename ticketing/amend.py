"""Edit a ticket's own facts during/after the call that filed it, and add notes (备注).

What the agent corrects while the caller is still on the line: the content (the classifier's
suggested department and confidence are refreshed while the matter still waits for dispatch — a
suggestion only; dispatching stays the desk's), the caller's name, and the enterprise of the
matter by its 统一社会信用代码 (validated by the one rule, ticketing.uscc; 一企一档 upserted by
code). Category/urgency corrections are ticketing.reclassify's (they need a reason). Every change is
an `amended` event naming the fields; a note is a `note` event.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from ticketing.errors import InvalidInput
from ticketing.events import record
from ticketing.intake import derive_title
from ticketing.lifecycle import lock_ticket
from ticketing.models import Enterprise, Ticket, TicketStatus, utcnow
from ticketing.text import normalise_text
from ticketing.uscc import validate_uscc

NOTE_CHARS = 1000
CONTENT_CHARS = 20000


def amend_ticket(
    session: Session,
    ticket_id: int | None,
    *,
    actor: str,
    content: str | None = None,
    submitter_name: str | None = None,
    uscc: str | None = None,
    enterprise_name: str | None = None,
) -> list[str]:
    """Apply the given (non-None) values; the names of the fields that changed.

    InvalidInput (naming the field) for empty or over-long content or a malformed code; nothing is
    written then."""
    ticket = lock_ticket(session, ticket_id)
    changed: list[str] = []
    detail: dict[str, Any] = {}
    if content is not None:
        text = normalise_text(content).strip()
        if not text:
            raise InvalidInput("请填写诉求内容", field="content")
        if len(text) > CONTENT_CHARS:
            raise InvalidInput(f"诉求内容不超过 {CONTENT_CHARS} 字", field="content")
        if text != ticket.content:
            ticket.content, ticket.title = text, derive_title(text)
            changed.append("content")
            if ticket.status == TicketStatus.pending_dispatch:
                _refresh_suggestion(ticket)
                detail.update(
                    suggested_department=ticket.suggested_department,
                    confidence=ticket.classifier_confidence,
                )
    if submitter_name is not None:
        name = normalise_text(submitter_name).strip()[:100] or None
        if name != ticket.submitter_name:
            ticket.submitter_name = name
            changed.append("submitter_name")
    if uscc is not None and uscc.strip():
        code = validate_uscc(uscc)
        ent = _enterprise(session, code, normalise_text(enterprise_name or "").strip()[:200])
        if ent.id != ticket.enterprise_id:
            ticket.enterprise_id = ent.id
            changed.append("enterprise")
            detail["uscc"] = code
    elif uscc is not None and ticket.enterprise_id is not None:  # cleared on purpose
        ticket.enterprise_id = None
        changed.append("enterprise")
        detail["uscc"] = None
    if changed:
        ticket.updated_at = utcnow()
        session.add(ticket)
        session.flush()
        record(session, ticket.id, actor, "amended", fields=changed, **detail)
    return changed


def add_note(session: Session, ticket_id: int | None, text: str, *, actor: str) -> str:
    """A note (备注) in the ticket's history; the stored text. InvalidInput when empty/too long."""
    ticket = lock_ticket(session, ticket_id)
    note = normalise_text(text).strip()
    if not note:
        raise InvalidInput("备注内容不能为空", field="note")
    if len(note) > NOTE_CHARS:
        raise InvalidInput(f"备注不超过 {NOTE_CHARS} 字", field="note")
    record(session, ticket.id, actor, "note", text=note)
    return note


def _enterprise(session: Session, code: str, name: str) -> Enterprise:
    ent = session.exec(select(Enterprise).where(Enterprise.uscc == code)).first()
    if ent is None:
        ent = Enterprise(uscc=code, name=name)
        session.add(ent)
        session.flush()
    elif name and not ent.name:
        ent.name = name
        session.add(ent)
    return ent


def _refresh_suggestion(ticket: Ticket) -> None:
    """The classifier's department and confidence for the new text (not installed: unchanged)."""
    try:
        from ticketing import classifier
    except ModuleNotFoundError as e:
        if e.name != "ticketing.classifier":
            raise
        return
    p = classifier.get_classifier().predict(f"{ticket.title}\n{ticket.content}")
    ticket.suggested_department, ticket.classifier_confidence = p.department, p.confidence
