"""Shared helpers for the dispatch / lifecycle / evaluation / hand-off tests (core-B)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from config.database import session_scope
from config.settings import Settings
from ticketing.classifier import Prediction
from ticketing.departments import sync_departments
from ticketing.models import (
    Evaluation,
    HandoffAttempt,
    SubOrder,
    Ticket,
    TicketEvent,
    TicketStatus,
    utcnow,
)
from ticketing.sla import deadline_for


def seed_departments(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as s:
        sync_departments(s, settings)


def make_ticket(
    engine: Engine,
    settings: Settings,
    *,
    content: str = "企业反映园区道路照明长期损坏，影响夜间生产运输",
    title: str = "园区道路照明",
    category: str = "enterprise",
    urgency: str = "general",
    deadline: datetime | None = None,
) -> int:
    """A pending ticket written directly (intake's own tests cover intake)."""
    now = utcnow()
    due, basis = deadline_for(settings, category, urgency, now)
    with session_scope(engine) as s:
        t = Ticket(
            number=f"T-{uuid.uuid4().hex[:12]}",
            channel="web",
            title=title,
            content=content,
            category=category,
            urgency=urgency,
            status=TicketStatus.pending_dispatch,
            deadline_at=deadline or due,
            sla_basis=basis,
            created_by="test",
        )
        s.add(t)
        s.flush()
        return t.id


def prediction(department: str = "JXJ", confidence: float = 0.9) -> Prediction:
    return Prediction(
        category="enterprise",
        urgency="general",
        department=department,
        confidence=confidence,
        details={},
    )


def ticket(engine: Engine, ticket_id: int) -> Ticket:
    with session_scope(engine, read_only=True) as s:
        return s.get(Ticket, ticket_id)


def suborders(engine: Engine, ticket_id: int) -> list[SubOrder]:
    with session_scope(engine, read_only=True) as s:
        return list(
            s.exec(select(SubOrder).where(SubOrder.ticket_id == ticket_id).order_by(SubOrder.id))
        )


def actions(engine: Engine, ticket_id: int) -> list[str]:
    with session_scope(engine, read_only=True) as s:
        return list(
            s.exec(
                select(TicketEvent.action)
                .where(TicketEvent.ticket_id == ticket_id)
                .order_by(TicketEvent.id)
            )
        )


def events(engine: Engine, ticket_id: int, action: str) -> list[TicketEvent]:
    with session_scope(engine, read_only=True) as s:
        return list(
            s.exec(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == ticket_id, TicketEvent.action == action)
                .order_by(TicketEvent.id)
            )
        )


def snapshot(engine: Engine, ticket_id: int) -> dict[str, Any]:
    """Everything an action could have written, to prove a refused action wrote nothing."""
    with session_scope(engine, read_only=True) as s:
        t = s.get(Ticket, ticket_id)
        subs = s.exec(select(SubOrder).where(SubOrder.ticket_id == ticket_id).order_by(SubOrder.id))
        return {
            "ticket": t.model_dump(exclude={"updated_at"}),
            "suborders": [so.model_dump() for so in subs],
            "events": s.exec(
                select(func.count())
                .select_from(TicketEvent)
                .where(TicketEvent.ticket_id == ticket_id)
            ).one(),
            "evaluations": s.exec(
                select(func.count())
                .select_from(Evaluation)
                .where(Evaluation.ticket_id == ticket_id)
            ).one(),
            "attempts": s.exec(select(func.count()).select_from(HandoffAttempt)).one(),
        }
