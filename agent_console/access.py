"""Row-level access on top of the role matrix: a department handler sees only tickets on which its
department has a sub-order (any round), and acts only on its own department's sub-orders.

Anything outside that answers 404 exactly like a ticket that does not exist, so a handler cannot
learn which ticket numbers or sub-order ids exist elsewhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.database import session_scope
from config.settings import Settings
from recordings import PlaybackDenied, Recording, check_access, log_playback
from ticketing import NotFound, Role, SubOrder, Ticket, TicketEvent, User, get_ticket_by_number

TRANSCRIPT_EVENT = "transcript_attached"
_TRANSCRIPT_TEXT = ("text", "keywords")
# history events that name the departments of a ticket (a handler sees only its own)
_DEPARTMENT_LISTS = ("departments",)


def is_handler(user: User) -> bool:
    return user.role == Role.handler


def visible_ticket(session: Session, user: User, number: str) -> Ticket:
    ticket = get_ticket_by_number(session, number)
    if is_handler(user):
        own = session.exec(
            select(SubOrder.id).where(
                SubOrder.ticket_id == ticket.id, SubOrder.department_code == user.department_code
            )
        ).first()
        if own is None:
            raise NotFound(f"未找到工单：{number}", field="number")
    return ticket


def visible_suborder(session: Session, user: User, suborder_id: int) -> SubOrder:
    so = session.get(SubOrder, suborder_id)
    if so is None or (is_handler(user) and so.department_code != user.department_code):
        raise NotFound(f"子工单不存在：{suborder_id}", suborder_id=suborder_id)
    return so


def handler_department(user: User) -> str | None:
    """The department a service call is restricted to (None: not restricted)."""
    return user.department_code if is_handler(user) else None


def visible_events(
    session: Session,
    settings: Settings,
    engine: Engine,
    user: User,
    history: list[TicketEvent],
    client: str | None,
) -> list[dict[str, Any]]:
    """The ticket's history as this user may read it (dicts for EventOut):

    - a handler: only its own department's sub-order events, and department lists (dispatched,
      dispatch_added, resolved) cut down to its own department;
    - a transcript follows the recordings policy of its recording (recordings.yaml `playback:`):
      a role refused the audio gets the event without the text; every read and every refusal is
      logged in the playback log like a playback (what="transcript"), in its own transaction."""
    dept = handler_department(user)
    if dept is not None:
        ticket_ids = {e.ticket_id for e in history}
        own = set(
            session.exec(
                select(SubOrder.id).where(
                    SubOrder.department_code == dept, col(SubOrder.ticket_id).in_(ticket_ids)
                )
            )
        )
        history = [e for e in history if e.suborder_id is None or e.suborder_id in own]
    out: list[dict[str, Any]] = []
    reads: list[tuple[int, int]] = []
    for e in history:
        detail = dict(e.detail or {})
        if dept is not None:
            for key in _DEPARTMENT_LISTS:
                if isinstance(detail.get(key), list):
                    detail[key] = [c for c in detail[key] if c == dept]
        if e.action == TRANSCRIPT_EVENT and detail.get("recording_id") is not None:
            status = _transcript_access(session, settings, user, detail["recording_id"])
            if status is not None:
                reads.append((int(detail["recording_id"]), status))
            if status != 200:
                for key in _TRANSCRIPT_TEXT:
                    detail.pop(key, None)
                detail["redacted"] = True
        out.append(
            {
                "id": e.id,
                "suborder_id": e.suborder_id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "detail": detail,
            }
        )
    if reads:
        with session_scope(engine) as s:
            for rec_id, status in reads:
                log_playback(s, rec_id, user, status, client=client, what="transcript")
    return out


def _transcript_access(
    session: Session, settings: Settings, user: User, recording_id: Any
) -> int | None:
    """200 when the user may hear the recording, else the refusal's status; None when the
    recording row is gone (nothing to log against)."""
    try:
        rec = session.get(Recording, int(recording_id))
    except (TypeError, ValueError):
        return None
    if rec is None:
        return None
    try:
        check_access(session, settings, rec, user)
    except PlaybackDenied as denied:
        return denied.status
    return 200
