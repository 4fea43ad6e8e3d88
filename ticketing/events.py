"""The append-only ticket history. Every state change goes through `record`; rows are never updated."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from config.bulk import insert_rows
from ticketing.models import TicketEvent, utcnow

_INSERT = TicketEvent.__table__.insert()  # type: ignore[attr-defined]


def entry(
    ticket_id: int | None, actor: str, action: str, *, suborder_id: int | None = None, **detail: Any
) -> dict[str, Any]:
    """One event row, for `record_all`."""
    return {
        "ticket_id": ticket_id,
        "suborder_id": suborder_id,
        "actor": actor,
        "action": action,
        "detail": _jsonable(detail),
        "at": utcnow(),
    }


def record(
    session: Session,
    ticket_id: int | None,  # a stored ticket's id (SQLModel types primary keys Optional)
    actor: str,
    action: str,
    *,
    suborder_id: int | None = None,
    **detail: Any,
) -> None:
    """Append one event now, in the session's transaction (visible to its later queries).

    A plain INSERT on the session's connection rather than an ORM object: events are never
    changed after they are written, and building + flushing a model per event cost about as much
    as the rest of an intake. The rows it names (ticket, sub-order) must already be flushed.
    """
    session.connection().execute(
        _INSERT, entry(ticket_id, actor, action, suborder_id=suborder_id, **detail)
    )


def record_all(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append several `entry` rows in one statement (config.bulk), in order."""
    if len(rows) > 1:
        insert_rows(session, TicketEvent.__table__, rows)  # type: ignore[attr-defined]
    elif rows:
        session.connection().execute(_INSERT, rows)


def history(session: Session, ticket_id: int) -> list[TicketEvent]:
    return list(
        session.exec(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(col(TicketEvent.at), col(TicketEvent.id))
        )
    )


_PLAIN = frozenset({str, int, float, bool, type(None)})


# An ISO 8601 time as detail holds it: aware since #18, naive UTC in older rows
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?"
)


def aware(value: datetime) -> datetime:
    """A time as event detail stores it: timezone-aware; a naive one is the models' UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def detail_time(value: object) -> datetime | None:
    """A time read back from an event's detail, aware; naive text (rows written before times
    carried their offset) is UTC. None for anything that is not a time."""
    if isinstance(value, datetime):
        return aware(value)
    if isinstance(value, str) and _ISO_TIME.fullmatch(value):
        try:
            return aware(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def _jsonable(v: Any) -> Any:
    if type(v) in _PLAIN:  # the usual case, first
        return v
    if isinstance(v, datetime):
        return aware(v).isoformat()
    # plain values inline, not a call each (a scan round writes a thousand details at once)
    if isinstance(v, dict):
        return {str(k): x if type(x) in _PLAIN else _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [x if type(x) in _PLAIN else _jsonable(x) for x in v]
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
