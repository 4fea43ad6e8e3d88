"""`callcenter demo`'s reads of its own database: call records with their tickets and callback
tasks, and the recordings the simulated calls left. Plain rows for callcenter.demo_display."""

from __future__ import annotations

from typing import Any

from callcenter.demo_display import mask
from config.settings import Settings


def ticket_rows(settings: Settings) -> list[dict[str, Any]]:
    """Call records with their tickets and callback tasks, from the demo database."""
    from sqlmodel import col, select

    from callcenter.models import CallRecord
    from config.database import make_engine, session_scope
    from ticketing import CallbackTask, Ticket

    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine, read_only=True) as s:
            rows = []
            for rec in s.exec(select(CallRecord).order_by(col(CallRecord.id))):
                ticket = s.get(Ticket, rec.ticket_id) if rec.ticket_id else None
                callbacks = s.exec(
                    select(CallbackTask).where(CallbackTask.call_id == rec.call_id)
                ).all()
                rows.append(
                    {
                        "call_id": rec.call_id,
                        "caller": mask(rec.caller_phone),
                        "disposition": rec.disposition,
                        "queue": rec.queue or "-",
                        "ticket": rec.ticket_number or "-",
                        "category": ticket.category if ticket else "-",
                        "urgency": ticket.urgency if ticket else "-",
                        "callback": ", ".join(f"{c.reason}/{c.status}" for c in callbacks) or "-",
                        "note": rec.ticket_error or "",
                    }
                )
            return rows
    finally:
        engine.dispose()


def recordings_line(settings: Settings) -> str:
    """How many recordings the simulated calls left in the store, and how many have text."""
    from sqlalchemy import func
    from sqlmodel import select

    from asr import Transcript
    from config.database import make_engine, session_scope
    from recordings import Recording

    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine, read_only=True) as s:
            recs = s.exec(select(func.count()).select_from(Recording)).one()
            texts = s.exec(select(func.count()).select_from(Transcript)).one()
    finally:
        engine.dispose()
    hint = "" if settings.asr_model_path else " (set CALLCENTER_ASR_MODEL_PATH for transcripts)"
    return f"{recs} recording(s) on tickets, {texts} transcribed{hint}"
