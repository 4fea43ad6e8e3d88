"""§14–15 over the API: manual 督办 on a ticket, the 督办/专办 lists, a head's acknowledgement, a
leader's coordinator, and the agents' 回访 tasks with their outcome. A handler sees and
acknowledges its own department's 督办 only (another department's: 404)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from sqlmodel import Session

from agent_console.access import handler_department, visible_ticket
from agent_console.deps import RowId, SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.schemas import _In, _Out
from ticketing import (
    Escalation,
    NotFound,
    User,
    acknowledge,
    assign_coordinator,
    close_special,
    escalations,
    get_escalation,
    record_revisit,
    revisit_tasks,
    supervise,
)

router = APIRouter(tags=["escalation"], route_class=TransactionRoute)


class SuperviseIn(_In):
    note: str = Field(min_length=1, max_length=1000, description="督办意见")
    due_at: datetime | None = Field(default=None, description="督办期限（须晚于现在）")


class AcknowledgeIn(_In):
    note: str | None = Field(default=None, max_length=1000)


class CoordinatorIn(_In):
    coordinator: str = Field(min_length=1, max_length=100, description="协调人")


class RevisitIn(_In):
    outcome: Literal["satisfied", "basically_satisfied", "unsatisfied", "unreachable"]
    note: str | None = Field(default=None, max_length=900)


class EscalationOut(_Out):
    id: int
    ticket_id: int
    ticket_number: str | None = None
    suborder_id: int | None = None
    department_code: str | None = None
    kind: str = Field(description="remind 催办 | supervise 督办 | special 专办")
    level: str
    step: str
    trigger: str = Field(description="auto | manual | redo")
    note: str | None = None
    due_at: datetime | None = None
    status: str = Field(description="open | acknowledged | closed")
    coordinator: str | None = None
    created_by: str
    created_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    notified_at: datetime | None = None


class RevisitOut(_Out):
    id: int
    ticket_id: int | None = None
    ticket_number: str | None = None
    status: str
    note: str | None = None
    due_at: datetime
    assigned_to: str | None = None
    done_at: datetime | None = None


def _out(e: Escalation, number: str | None) -> EscalationOut:
    return EscalationOut.model_validate(e).model_copy(update={"ticket_number": number})


@router.post(
    "/tickets/{number}/supervision",
    name="tickets.supervise",
    status_code=201,
    response_model=list[EscalationOut],
    responses=responses(401, 403, 404, 422),
)
def supervise_ticket(
    number: str,
    body: SuperviseIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("tickets.supervise")),
) -> list[EscalationOut]:
    """人工督办: a supervisor or leader on any ticket, with a note and an optional deadline."""
    ticket = visible_ticket(session, user, number)
    rows = supervise(
        session, settings, ticket, actor=user.username, note=body.note, due_at=body.due_at
    )
    session.flush()
    return [_out(e, ticket.number) for e in rows]


@router.get(
    "/escalations",
    name="escalations.list",
    response_model=list[EscalationOut],
    responses=responses(401, 403, 422),
)
def list_escalations(
    session: SessionDep,
    user: User = Depends(require("escalations.list")),
    kind: Literal["remind", "supervise", "special"] | None = None,
    status: Literal["open", "acknowledged", "closed"] | None = None,
    limit: int = Query(default=100, ge=1, le=500),
) -> list[EscalationOut]:
    """催办/督办/专办, newest first; a handler gets its own department's only."""
    rows = escalations(
        session, kind=kind, status=status, department=handler_department(user), limit=limit
    )
    return [_out(e, t.number) for e, t in rows]


def _own(session: Session, user: User, escalation_id: int) -> Escalation:
    esc = get_escalation(session, escalation_id)
    dept = handler_department(user)
    if dept is not None and esc.department_code != dept:
        raise NotFound(f"督办/专办记录不存在：{escalation_id}", escalation_id=escalation_id)
    return esc


@router.post(
    "/escalations/{escalation_id}/acknowledge",
    name="escalations.acknowledge",
    response_model=EscalationOut,
    responses=responses(401, 403, 404, 409, 422),
)
def acknowledge_escalation(
    escalation_id: RowId,
    session: SessionDep,
    body: AcknowledgeIn | None = None,
    user: User = Depends(require("escalations.acknowledge")),
) -> EscalationOut:
    """The unit head confirms a 督办 (its department's head, or an admin or supervisor)."""
    _own(session, user, escalation_id)
    esc = acknowledge(
        session,
        escalation_id,
        actor=user.username,
        department=handler_department(user),
        head=user.is_head,
        note=body.note if body else None,
    )
    session.flush()
    return _out(esc, None)


@router.post(
    "/escalations/{escalation_id}/coordinator",
    name="escalations.coordinator",
    response_model=EscalationOut,
    responses=responses(401, 403, 404, 409, 422),
)
def set_coordinator(
    escalation_id: RowId,
    body: CoordinatorIn,
    session: SessionDep,
    user: User = Depends(require("escalations.coordinator")),
) -> EscalationOut:
    """A leader assigns the coordinator of a 专办."""
    esc = assign_coordinator(
        session, escalation_id, actor=user.username, coordinator=body.coordinator
    )
    session.flush()
    return _out(esc, None)


@router.post(
    "/escalations/{escalation_id}/close",
    name="escalations.close",
    response_model=EscalationOut,
    responses=responses(401, 403, 404, 409),
)
def close_escalation(
    escalation_id: RowId,
    session: SessionDep,
    user: User = Depends(require("escalations.close")),
) -> EscalationOut:
    """A leader takes a 专办 off the red board."""
    esc = close_special(session, escalation_id, actor=user.username)
    session.flush()
    return _out(esc, None)


@router.get(
    "/revisits",
    name="revisits.list",
    response_model=list[RevisitOut],
    responses=responses(401, 403, 422),
)
def list_revisits(
    session: SessionDep,
    user: User = Depends(require("revisits.list")),
    status: Literal["open", "done"] = "open",
    limit: int = Query(default=100, ge=1, le=500),
) -> list[RevisitOut]:
    """回访 tasks: every 不满意 and a sample of the other ratings (ticketing.followup)."""
    return [
        RevisitOut.model_validate(c).model_copy(update={"ticket_number": t.number})
        for c, t in revisit_tasks(session, status=status, limit=limit)
    ]


@router.post(
    "/revisits/{task_id}/outcome",
    name="revisits.outcome",
    response_model=RevisitOut,
    responses=responses(401, 403, 404, 409, 422),
)
def revisit_outcome(
    task_id: RowId,
    body: RevisitIn,
    session: SessionDep,
    user: User = Depends(require("revisits.outcome")),
) -> RevisitOut:
    """Record a 回访's outcome (满意 / 基本满意 / 不满意 / 未接通) and a note."""
    task = record_revisit(
        session, task_id, actor=user.username, outcome=body.outcome, note=body.note
    )
    session.flush()
    return RevisitOut.model_validate(task)
