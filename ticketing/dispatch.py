"""Dispatch (§10–11) and the departments' sub-order actions (§12).

Automatic dispatch: a routing rule (routing.yaml) wins; otherwise the classifier's suggested
department when its confidence reaches the threshold; otherwise the ticket waits for a dispatcher
(dispatch_mode "manual") with an event saying why. Manual/parallel dispatch creates one sub-order
per department, each with its own deadline. Departments then accept, reply, return (with a reason,
back to the dispatcher) or ask for an extension, which a dispatcher/supervisor decides.

Every function validates everything before writing anything; the caller owns the transaction
(config.database.session_scope), so an error leaves nothing half-written.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.errors import Conflict, InvalidInput, PermissionDenied
from ticketing.lifecycle import (
    DISPATCHABLE,
    TICKET_LABELS,
    check_suborder_action,
    lock_suborder,
    lock_ticket,
    recompute_ticket_status,
    round_suborders,
    transition_suborder,
    transition_ticket,
)
from ticketing.models import Department, SubOrder, SubOrderStatus, Ticket, TicketStatus, utcnow
from ticketing.routing import match_rule
from ticketing.sla import add_duration, to_local, to_utc_naive
from ticketing.text import normalise_text

SS = SubOrderStatus
UNITS = ("hours", "working_days")


class PredictionLike(Protocol):
    """What auto_dispatch reads from ticketing.classifier.Prediction (and nothing more)."""

    category: str
    urgency: str
    department: str | None
    confidence: float
    details: dict[str, Any]


# ---------------------------------------------------------------- helpers


def classifier_threshold(settings: Settings) -> float:
    """CALLCENTER_CLASSIFIER_THRESHOLD when set explicitly, else categories.yaml, else the default."""
    if "classifier_threshold" in settings.model_fields_set:
        return float(settings.classifier_threshold)
    value = load_yaml(settings, "categories.yaml").get("classifier_threshold")
    return float(value) if value is not None else float(settings.classifier_threshold)


def local_text(settings: Settings, dt: datetime | None) -> str:
    """A deadline as the people involved read it (local time)."""
    return "无" if dt is None else to_local(settings, dt).strftime("%Y-%m-%d %H:%M")


def _clean_codes(departments: Iterable[str] | str) -> list[str]:
    if isinstance(departments, str):
        departments = [departments]
    codes = [str(c).strip() for c in departments or []]
    if not codes or any(not c for c in codes):
        raise InvalidInput("请至少选择一个承办部门，部门编码不能为空", field="departments")
    dups = sorted({c for c in codes if codes.count(c) > 1})
    if dups:
        raise InvalidInput(f"承办部门重复：{'、'.join(dups)}", field="departments", duplicates=dups)
    return codes


def _departments(session: Session, codes: Sequence[str]) -> dict[str, Department]:
    rows = session.exec(select(Department).where(Department.code.in_(list(codes))))
    return {d.code: d for d in rows}


# ---- a short-lived per-process read cache of the department table, for intake's auto-dispatch

DEPARTMENT_CACHE_TTL_S = 5.0
_dept_cache: weakref.WeakKeyDictionary[Any, tuple[float, dict[str, Department]]] = (
    weakref.WeakKeyDictionary()
)
_dept_cache_lock = threading.Lock()
_FIELDS = ("id", "code", "name", "head_name", "head_phone", "handoff_url", "active")


def _cached_departments(session: Session, codes: Sequence[str]) -> dict[str, Department]:
    """Departments for auto-dispatch from a per-process snapshot (≤ DEPARTMENT_CACHE_TTL_S old).

    Saves a query per intake. A commit in this process that changes a Department through the ORM
    (sync_departments, the admin API) clears the snapshot at once; a change made by another process
    is seen within the TTL. Entries are transient copies, never attached to any session.
    """
    bind = session.get_bind()
    now = time.monotonic()
    with _dept_cache_lock:
        hit = _dept_cache.get(bind)
    if hit is None or hit[0] <= now:
        rows = session.exec(select(Department)).all()
        snapshot = {d.code: Department(**{f: getattr(d, f) for f in _FIELDS}) for d in rows}
        hit = (now + DEPARTMENT_CACHE_TTL_S, snapshot)
        with _dept_cache_lock:
            _dept_cache[bind] = hit
    return {c: hit[1][c] for c in codes if c in hit[1]}


def clear_department_cache() -> None:
    with _dept_cache_lock:
        _dept_cache.clear()


@event.listens_for(OrmSession, "before_flush")
def _note_department_change(session: OrmSession, _ctx: Any, _instances: Any) -> None:
    if any(isinstance(o, Department) for o in chain(session.new, session.dirty, session.deleted)):
        session.info["_departments_changed"] = True
        clear_department_cache()


@event.listens_for(OrmSession, "after_commit")
def _departments_committed(session: OrmSession) -> None:
    if session.info.pop("_departments_changed", False):
        clear_department_cache()


@event.listens_for(OrmSession, "after_rollback")
def _departments_rolled_back(session: OrmSession) -> None:
    if session.info.pop("_departments_changed", False):
        clear_department_cache()


def _unusable_in(found: dict[str, Department], codes: Sequence[str]) -> list[str]:
    return [c for c in codes if c not in found or not found[c].active]


def _text(value: str | None, field: str, label: str, max_len: int, *, required: bool) -> str | None:
    v = normalise_text(value)  # a reply of only control/zero-width characters is empty
    if not v:
        if required:
            raise InvalidInput(f"{label}不能为空", field=field)
        return None
    if len(v) > max_len:
        raise InvalidInput(f"{label}不能超过 {max_len} 个字", field=field, max_length=max_len)
    return v


def _own(so: SubOrder, department: str | None) -> None:
    """A department handler may act only on its own department's sub-orders."""
    if department is not None and so.department_code != department:
        raise PermissionDenied(
            f"无权处理其他部门的子工单（子工单属于 {so.department_code}）",
            suborder_id=so.id,
            department=department,
        )


# ---------------------------------------------------------------- dispatch


def auto_dispatch(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    prediction: PredictionLike,
    actor: str,
    *,
    created_here: bool = False,
) -> list[SubOrder]:
    """Dispatch automatically when a rule or a confident prediction allows; else mark manual.

    created_here=True (intake only): the ticket was inserted by this very transaction, so no
    other transaction can see or lock it and its in-memory state is current — the row-lock re-read
    and the sub-order lookup are skipped (two queries and two autoflushes per intake).
    """
    if ticket.id is None:
        session.add(ticket)
        session.flush()
    if not created_here:
        ticket = lock_ticket(session, ticket.id)
    if ticket.status != TicketStatus.pending_dispatch:
        raise Conflict(
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”"
            f"({ticket.status})，只有待派单(pending_dispatch)的工单可以自动派单",
            code="illegal_transition",
            current=ticket.status,
        )
    confidence = _confidence(getattr(prediction, "confidence", None))
    suggested = getattr(prediction, "department", None) or None
    ticket.suggested_department = suggested
    ticket.classifier_confidence = confidence
    threshold = classifier_threshold(settings)

    rule = match_rule(settings, f"{ticket.title or ''}\n{ticket.content or ''}")
    lookup = _cached_departments if created_here else _departments
    if rule is not None:
        found = lookup(session, rule.departments)
        bad = _unusable_in(found, rule.departments)
        if not bad:
            return _dispatch(
                session,
                settings,
                ticket,
                list(rule.departments),
                actor=actor,
                mode="auto",
                basis={"basis": "rule", "rule": rule.name, "keywords": list(rule.hits)},
                locked=True,
                found=found,
                first_round_empty=created_here,
            )
        reason = f"路由规则 {rule.name} 指向的部门不存在或已停用：{'、'.join(bad)}"
    elif confidence >= threshold and suggested:
        found = lookup(session, [suggested])
        bad = _unusable_in(found, [suggested])
        if not bad:
            return _dispatch(
                session,
                settings,
                ticket,
                [suggested],
                actor=actor,
                mode="auto",
                basis={"basis": "classifier", "confidence": confidence, "threshold": threshold},
                locked=True,
                found=found,
                first_round_empty=created_here,
            )
        reason = f"分类建议的部门 {suggested} 不存在或已停用"
    elif not suggested:
        reason = "分类器未给出建议部门"
    else:
        reason = f"分类置信度 {confidence:.2f} 低于阈值 {threshold:.2f}"

    ticket.dispatch_mode = "manual"
    ticket.updated_at = utcnow()
    session.add(ticket)
    events.record(
        session,
        ticket.id,
        actor,
        "manual_dispatch_required",
        reason=reason,
        confidence=confidence,
        threshold=threshold,
        suggested_department=suggested,
        rule=rule.name if rule else None,
    )
    return []


def _confidence(value: Any) -> float:
    try:
        c = float(value)
    except (TypeError, ValueError):
        return 0.0
    return c if math.isfinite(c) else 0.0


def dispatch(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    departments: Iterable[str] | str,
    *,
    actor: str,
    instructions: str | None = None,
    deadline: datetime | None = None,
    allow_beyond_ticket_deadline: bool = False,
) -> list[SubOrder]:
    """Manual (or parallel) dispatch: one sub-order per department, each with its own deadline.

    The deadline defaults to the ticket's committed deadline; a later one needs
    allow_beyond_ticket_deadline=True (a dispatcher's deliberate choice, recorded in the event).
    """
    return _dispatch(
        session,
        settings,
        ticket,
        departments,
        actor=actor,
        mode="manual",
        instructions=instructions,
        deadline=deadline,
        allow_beyond_ticket_deadline=allow_beyond_ticket_deadline,
        basis={"basis": "dispatcher"},
    )


def _dispatch(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    departments: Iterable[str] | str,
    *,
    actor: str,
    mode: str,
    basis: dict[str, Any],
    instructions: str | None = None,
    deadline: datetime | None = None,
    allow_beyond_ticket_deadline: bool = False,
    locked: bool = False,
    found: dict[str, Department] | None = None,
    first_round_empty: bool = False,
) -> list[SubOrder]:
    """locked: the caller already holds (or created) the ticket row; found: departments it just
    read in this transaction; first_round_empty: the ticket was created by this transaction."""
    from ticketing import handoff  # handoff maps callbacks onto the actions below

    codes = _clean_codes(departments)
    instructions = _text(instructions, "instructions", "派单说明", 2000, required=False)
    if not locked:
        ticket = lock_ticket(session, ticket.id)
    if ticket.status not in DISPATCHABLE:
        raise Conflict(
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”"
            f"({ticket.status})，不能派单",
            code="illegal_transition",
            current=ticket.status,
            target=TicketStatus.dispatched,
        )
    if found is None or any(c not in found for c in codes):
        found = _departments(session, codes)
    missing = [c for c in codes if c not in found]
    if missing:
        raise InvalidInput(
            f"部门不存在：{'、'.join(missing)}", field="departments", missing=missing
        )
    inactive = [c for c in codes if not found[c].active]
    if inactive:
        raise InvalidInput(
            f"部门已停用：{'、'.join(inactive)}", field="departments", inactive=inactive
        )
    live = (
        set()
        if first_round_empty
        else {
            s.department_code for s in round_suborders(session, ticket) if s.status != SS.returned
        }
    )
    dup = [c for c in codes if c in live]
    if dup:
        raise Conflict(
            f"本轮已向以下部门派单且未退回，不能重复派单：{'、'.join(dup)}",
            code="duplicate_dispatch",
            departments=dup,
        )

    due = ticket.deadline_at
    if deadline is not None:
        due = to_utc_naive(deadline)
        if due <= utcnow():
            raise InvalidInput("子工单办理时限不能早于当前时间", field="deadline")
        if (
            ticket.deadline_at is not None
            and due > ticket.deadline_at
            and not allow_beyond_ticket_deadline
        ):
            raise InvalidInput(
                f"子工单办理时限不能晚于工单承诺时限（{local_text(settings, ticket.deadline_at)}）",
                field="deadline",
                ticket_deadline=ticket.deadline_at,
            )

    if ticket.status != TicketStatus.dispatched:
        ticket.dispatch_mode = mode
        transition_ticket(
            session,
            ticket,
            TicketStatus.dispatched,
            actor=actor,
            action="dispatched",
            mode=mode,
            departments=codes,
            round=ticket.round,
            **basis,
        )
    else:
        events.record(
            session, ticket.id, actor, "dispatch_added", mode=mode, departments=codes, **basis
        )

    created: list[SubOrder] = []
    now = utcnow()
    for code in codes:
        so = SubOrder(
            ticket_id=ticket.id,
            department_code=code,
            round=ticket.round,
            status=SS.dispatched,
            instructions=instructions,
            deadline_at=due,
            dispatched_by=actor,
            dispatched_at=now,
        )
        session.add(so)
        session.flush()
        queued = handoff.schedule(session, settings, ticket, so, found[code])
        events.record(
            session,
            ticket.id,
            actor,
            "suborder_dispatched",
            suborder_id=so.id,
            department=code,
            deadline=due,
            mode=mode,
            instructions=instructions,
            handoff=queued,
            beyond_ticket_deadline=bool(
                deadline is not None and ticket.deadline_at is not None and due > ticket.deadline_at
            ),
        )
        created.append(so)
    return created


# ---------------------------------------------------------------- sub-order actions


def accept(
    session: Session,
    settings: Settings,
    suborder_id: int,
    *,
    actor: str,
    department: str | None = None,
) -> SubOrder:
    """签收: the department takes the sub-order on."""
    ticket, so = lock_suborder(session, suborder_id)
    _own(so, department)
    transition_suborder(session, ticket, so, "accept", actor=actor, event="suborder_accepted")
    so.accepted_at = utcnow()
    return so


def reply(
    session: Session,
    settings: Settings,
    suborder_id: int,
    *,
    actor: str,
    text: str,
    department: str | None = None,
) -> SubOrder:
    """回复: the department's answer; the ticket resolves when every live sub-order has replied."""
    body = _text(text, "text", "回复内容", 5000, required=True)
    ticket, so = lock_suborder(session, suborder_id)
    _own(so, department)
    transition_suborder(
        session, ticket, so, "reply", actor=actor, event="suborder_replied", text=body
    )
    so.reply = body
    so.replied_at = utcnow()
    recompute_ticket_status(session, ticket, actor=actor)
    return so


def return_suborder(
    session: Session,
    settings: Settings,
    suborder_id: int,
    *,
    actor: str,
    reason: str,
    department: str | None = None,
) -> SubOrder:
    """退回 with a reason: the sub-order goes back to the dispatcher, who may re-dispatch."""
    why = _text(reason, "reason", "退回原因", 1000, required=True)
    ticket, so = lock_suborder(session, suborder_id)
    _own(so, department)
    transition_suborder(
        session,
        ticket,
        so,
        "return",
        actor=actor,
        event="suborder_returned",
        reason=why,
        to_dispatcher=True,
    )
    so.return_reason = why
    recompute_ticket_status(session, ticket, actor=actor)
    return so


def request_extension(
    session: Session,
    settings: Settings,
    suborder_id: int,
    *,
    actor: str,
    reason: str,
    amount: int | None = None,
    unit: str | None = None,
    until: datetime | None = None,
    department: str | None = None,
) -> SubOrder:
    """延期申请: by amount+unit (hours / working_days) or to a date, at most sla.yaml max_extension."""
    why = _text(reason, "reason", "延期原因", 1000, required=True)
    if (until is None) == (amount is None):
        raise InvalidInput(
            "请提供延期时长（amount 与 unit）或延期截止时间（until）之一", field="amount"
        )
    if amount is not None:
        if unit not in UNITS:
            raise InvalidInput(f"延期单位必须是 {' 或 '.join(UNITS)}", field="unit")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidInput("延期时长必须是正整数", field="amount")
    ticket, so = lock_suborder(session, suborder_id)
    _own(so, department)
    check_suborder_action(so, "request_extension")

    base = so.deadline_at or ticket.deadline_at or utcnow()
    limit = _max_extension(settings, base)
    new_until = (
        to_utc_naive(until) if until is not None else add_duration(settings, base, amount, unit)
    )
    if new_until <= base:
        raise InvalidInput(
            f"延期后的时限必须晚于当前时限（{local_text(settings, base)}）", field="until"
        )
    if new_until > limit:
        raise InvalidInput(
            f"延期超出上限：最多延至 {local_text(settings, limit)}",
            field="until",
            limit=limit,
        )
    transition_suborder(
        session,
        ticket,
        so,
        "request_extension",
        actor=actor,
        event="extension_requested",
        reason=why,
        current_deadline=base,
        until=new_until,
    )
    so.extension_until = new_until
    so.extension_reason = why
    return so


def _max_extension(settings: Settings, base: datetime) -> datetime:
    cfg = load_yaml(settings, "sla.yaml").get("max_extension") or {}
    amount, unit = cfg.get("amount"), cfg.get("unit")
    if not isinstance(amount, int) or unit not in UNITS:
        raise ConfigError("sla.yaml: max_extension needs an integer amount and a unit")
    return add_duration(settings, base, amount, unit)


def decide_extension(
    session: Session,
    settings: Settings,
    suborder_id: int,
    *,
    actor: str,
    approve: bool,
    note: str | None = None,
    department: str | None = None,
) -> SubOrder:
    """Dispatcher/supervisor decision. Approval moves the sub-order's deadline (and the ticket's
    committed deadline when the new one is later); either way the department carries on."""
    if department is not None:
        raise PermissionDenied("部门经办人不能审批延期申请", suborder_id=suborder_id)
    note = _text(note, "note", "审批意见", 1000, required=False)
    ticket, so = lock_suborder(session, suborder_id)
    check_suborder_action(so, "decide_extension")
    previous = so.deadline_at
    detail: dict[str, Any] = {"note": note, "requested_until": so.extension_until}
    if approve:
        so.deadline_at = so.extension_until
        detail["previous_deadline"] = previous
        if (
            ticket.deadline_at is not None
            and so.deadline_at
            and so.deadline_at > ticket.deadline_at
        ):
            detail["previous_ticket_deadline"] = ticket.deadline_at
            ticket.deadline_at = so.deadline_at
    else:
        so.extension_until = None
    transition_suborder(
        session,
        ticket,
        so,
        "decide_extension",
        actor=actor,
        event="extension_approved" if approve else "extension_rejected",
        **detail,
    )
    return so
