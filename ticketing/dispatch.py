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

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlmodel import Session, col, select

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing import events, handoff, hooks, submitter_notices
from ticketing.department_cache import all_cached_departments, cached_departments
from ticketing.dispatch_rule import (
    DepartmentLookup,
    PredictionLike,
    decide,
)
from ticketing.errors import Conflict, InvalidInput, PermissionDenied
from ticketing.lifecycle import (
    DISPATCHABLE,
    DROPPED,
    TICKET_LABELS,
    awaiting_returns,
    check_suborder_action,
    lock_suborder,
    lock_ticket,
    recompute_round,
    round_suborders,
    transition_suborder,
    transition_ticket,
)
from ticketing.models import (
    Department,
    SubOrder,
    SubOrderRole,
    SubOrderStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from ticketing.sla import add_duration, to_local, to_utc_naive
from ticketing.text import normalise_text

SS = SubOrderStatus
UNITS = ("hours", "working_days")


# ---------------------------------------------------------------- helpers


def local_text(settings: Settings, dt: datetime | None) -> str:
    """A deadline as the people involved read it (local time)."""
    return "无" if dt is None else to_local(settings, dt).strftime("%Y-%m-%d %H:%M")


def clean_codes(departments: Iterable[str] | str) -> list[str]:
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
    rows = session.exec(select(Department).where(col(Department.code).in_(list(codes))))
    return {d.code: d for d in rows}


def _names(found: Mapping[str, Department], codes: Sequence[str]) -> str:
    """The departments as people read them (their names; the code of one not found)."""
    return "、".join(found[c].name if c in found else c for c in codes)


def departments_by_code(session: Session, codes: Sequence[str]) -> dict[str, Department]:
    """The Department rows of `codes` (the lookup dispatch_rule.decide is given)."""
    return _departments(session, codes)


def dispatch_locked(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    codes: Sequence[str],
    *,
    actor: str,
    mode: str,
    basis: dict[str, Any],
) -> Any:
    """Dispatch a ticket whose row this transaction already holds locked (e.g. reopened by a
    rating: ticketing.direct_answer after 不满意) — the same rules as any dispatch."""
    return _dispatch(
        session, settings, ticket, codes, actor=actor, mode=mode, basis=basis, locked=True
    )


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
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”，"
            "只有待派单的工单可以自动派单",
            code="illegal_transition",
            current=ticket.status,
        )
    lookup: DepartmentLookup
    if created_here:
        lookup = partial(cached_departments, session)
    else:
        lookup = partial(_departments, session)
    decision = decide(
        settings,
        ticket.title,
        ticket.content,
        prediction,
        lookup,
        partial(all_cached_departments, session),
    )
    ticket.suggested_department = decision.suggested
    ticket.classifier_confidence = decision.confidence
    if decision.conduct:
        ticket.conduct = True
        ticket.conduct_accused = ",".join(decision.accused) or None
    if decision.codes:
        return _dispatch(
            session,
            settings,
            ticket,
            decision.codes,
            actor=actor,
            mode="auto",
            basis=decision.basis,
            locked=True,
            found=dict(decision.found),
            first_round_empty=created_here,
        )
    ticket.dispatch_mode = "manual"
    ticket.updated_at = utcnow()
    session.add(ticket)
    events.record(session, ticket.id, actor, "manual_dispatch_required", **decision.manual_event())
    return []


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
    lead: str | None = None,
    deadlines: Mapping[str, datetime] | None = None,
) -> list[SubOrder]:
    """Manual (or parallel) dispatch: one sub-order per department, each with its own deadline.

    The deadline defaults to the ticket's committed deadline (`deadlines` sets one department's
    own); a later one needs allow_beyond_ticket_deadline=True (a dispatcher's deliberate choice,
    recorded in the event). `lead` names the 主办 department: the others of the round become 协办,
    and the ticket resolves on the lead's reply once every 协办 replied or was released.
    Returns of the round awaiting the dispatcher count as handled ("redispatched").
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
        lead=lead,
        deadlines=deadlines,
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
    lead: str | None = None,
    deadlines: Mapping[str, datetime] | None = None,
) -> list[SubOrder]:
    """locked: the caller already holds (or created) the ticket row; found: departments it just
    read in this transaction; first_round_empty: the ticket was created by this transaction."""
    codes = clean_codes(departments)
    instructions = _text(instructions, "instructions", "派单说明", 2000, required=False)
    lead = (lead or "").strip() or None
    if lead is not None and lead not in codes:
        raise InvalidInput("主办部门必须是本次派单的部门之一", field="lead", lead=lead)
    extra = sorted(set(deadlines or {}) - set(codes))
    if extra:
        raise InvalidInput(
            f"单独设定时限的部门不在本次派单中：{'、'.join(extra)}", field="deadlines", extra=extra
        )
    if not locked:
        ticket = lock_ticket(session, ticket.id)
    if ticket.status not in DISPATCHABLE:
        raise Conflict(
            f"工单 {ticket.number} 当前状态为“{TICKET_LABELS.get(ticket.status, ticket.status)}”，"
            "不能派单",
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
            f"部门已停用：{_names(found, inactive)}", field="departments", inactive=inactive
        )
    accused = _accused(ticket)
    refused = [c for c in codes if c in accused]
    if refused:
        raise InvalidInput(
            f"作风投诉不能派给被投诉部门：{_names(found, refused)}",
            field="departments",
            accused=refused,
        )
    round_subs = [] if first_round_empty else round_suborders(session, ticket)
    live_subs = [s for s in round_subs if s.status not in DROPPED]
    live = {s.department_code for s in live_subs}
    dup = [c for c in codes if c in live]
    if dup:
        raise Conflict(
            f"本轮已向以下部门派单且未退回，不能重复派单：{_names(found, dup)}",
            code="duplicate_dispatch",
            departments=dup,
        )

    current_lead = [s for s in live_subs if s.role == SubOrderRole.lead]
    if lead is not None and current_lead:
        had = [current_lead[0].department_code]
        raise Conflict(
            f"本轮已有主办部门：{_names(_departments(session, had), had)}",
            code="lead_exists",
            lead=had[0],
        )
    has_lead = lead is not None or bool(current_lead)

    due_of: dict[str, datetime | None] = {}
    for code in codes:
        own = (deadlines or {}).get(code, deadline)
        due_of[code] = _due(settings, ticket, own, allow_beyond_ticket_deadline)
    waiting = awaiting_returns(round_subs)

    if lead is not None:
        basis = {**basis, "lead": lead}
    if waiting:
        basis = {**basis, "handled_returns": [s.id for s in waiting]}
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
    now = utcnow()
    for s in waiting:  # the dispatcher has looked at the return: it sent the matter on
        s.return_handled_at = now
        s.return_resolution = "redispatched"
        s.return_note = f"已重新派单：{'、'.join(codes)}"
        session.add(s)
    if lead is not None:  # the round's departments so far assist the new lead
        for s in live_subs:
            if s.role is None:
                s.role = SubOrderRole.assist
                session.add(s)

    created: list[SubOrder] = []
    for code in codes:
        due = due_of[code]
        role = None
        if has_lead:
            role = SubOrderRole.lead if code == lead else SubOrderRole.assist
        so = SubOrder(
            ticket_id=ticket.id,  # type: ignore[arg-type]  # a stored ticket: id set
            department_code=code,
            round=ticket.round,
            status=SS.dispatched,
            instructions=instructions,
            deadline_at=due,
            dispatched_by=actor,
            dispatched_at=now,
            role=role,
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
            role=role,
            beyond_ticket_deadline=bool(
                due is not None and ticket.deadline_at is not None and due > ticket.deadline_at
            ),
        )
        created.append(so)
    hooks.after_dispatch(session, ticket, created)
    return created


def _due(
    settings: Settings, ticket: Ticket, deadline: datetime | None, allow_beyond: bool
) -> datetime | None:
    """A sub-order's deadline: the ticket's committed one unless the dispatcher sets its own."""
    if deadline is None:
        return ticket.deadline_at
    due = to_utc_naive(deadline)
    if due <= utcnow():
        raise InvalidInput("子工单办理时限不能早于当前时间", field="deadline")
    if ticket.deadline_at is not None and due > ticket.deadline_at and not allow_beyond:
        raise InvalidInput(
            f"子工单办理时限不能晚于工单承诺时限（{local_text(settings, ticket.deadline_at)}）",
            field="deadline",
            ticket_deadline=ticket.deadline_at,
        )
    return due


def _accused(ticket: Ticket) -> set[str]:
    """The departments a conduct complaint is about: never sent the matter."""
    if not ticket.conduct or not ticket.conduct_accused:
        return set()
    return {c for c in ticket.conduct_accused.split(",") if c}


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
    # set before the move: the finish clock the move starts runs from this very instant
    before, so.accepted_at = so.accepted_at, utcnow()
    try:
        transition_suborder(session, ticket, so, "accept", actor=actor, event="suborder_accepted")
    except Exception:
        so.accepted_at = before
        raise
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
    _recompute_and_tell(session, settings, ticket, actor)
    return so


def _recompute_and_tell(session: Session, settings: Settings, ticket: Ticket, actor: str) -> None:
    """lifecycle.recompute_round, and tell the submitter when that resolved the ticket (a return to
    the dispatcher is not told: the committed deadline stands)."""
    before = ticket.status
    status, subs = recompute_round(session, ticket, actor=actor)
    if status != before:
        submitter_notices.tell_resolved(session, settings, ticket, subs)


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
    _recompute_and_tell(session, settings, ticket, actor)
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
        raise InvalidInput("请提供延期时长（及单位）或延期截止时间，二者选一", field="amount")
    if amount is not None:
        if unit not in UNITS:
            raise InvalidInput("延期单位必须是 工作日 或 小时", field="unit", allowed=list(UNITS))
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidInput("延期时长必须是正整数", field="amount")
    ticket, so = lock_suborder(session, suborder_id)
    _own(so, department)
    check_suborder_action(so, "request_extension")

    base = so.deadline_at or ticket.deadline_at or utcnow()
    limit = _max_extension(settings, base)
    if until is not None:
        new_until = to_utc_naive(until)
    else:  # validated above: amount and unit come together when until does not
        new_until = add_duration(settings, base, cast(int, amount), cast(str, unit))
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
        raise PermissionDenied("部门承办人不能审批延期申请", suborder_id=suborder_id)
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
    if "previous_ticket_deadline" in detail:  # the committed deadline moved: tell the submitter
        submitter_notices.tell_extension(
            session,
            settings,
            ticket,
            previous_deadline=detail["previous_ticket_deadline"],
            reason=so.extension_reason,
        )
    return so


# ---------------------------------------------------------------- the dispatcher's follow-up


def _dispatcher_only(department: str | None, suborder_id: int) -> None:
    if department is not None:
        raise PermissionDenied("部门承办人不能执行此操作", suborder_id=suborder_id)


def close_return(
    session: Session,
    settings: Settings,
    suborder_id: int,
    *,
    actor: str,
    reason: str,
    department: str | None = None,
) -> SubOrder:
    """The dispatcher looked at a return ("not ours") and needs no other department: closed with
    a reason. The ticket then resolves if every live sub-order has replied."""
    _dispatcher_only(department, suborder_id)
    why = _text(reason, "reason", "关闭理由", 1000, required=True)
    ticket, so = lock_suborder(session, suborder_id)
    if so.status != SS.returned or so.return_handled_at is not None:
        raise Conflict(
            f"子工单 {so.id} 不是待处理的退回件",
            code="illegal_transition",
            entity="suborder",
            current=so.status,
        )
    if so.round != ticket.round:
        raise Conflict(f"子工单 {so.id} 属于往轮办理，无需处理", code="stale_round")
    so.return_handled_at = utcnow()
    so.return_resolution = "closed"
    so.return_note = why
    session.add(so)
    events.record(
        session,
        ticket.id,
        actor,
        "return_closed",
        suborder_id=so.id,
        department=so.department_code,
        reason=why,
    )
    _recompute_and_tell(session, settings, ticket, actor)
    return so


def release(
    session: Session,
    settings: Settings,
    suborder_id: int,
    *,
    actor: str,
    reason: str,
    department: str | None = None,
) -> SubOrder:
    """解除协办: the dispatcher lets an assisting department go; the lead's reply can then resolve
    the ticket without it. Only a 协办 sub-order can be released."""
    _dispatcher_only(department, suborder_id)
    why = _text(reason, "reason", "解除理由", 1000, required=True)
    ticket, so = lock_suborder(session, suborder_id)
    if so.role != SubOrderRole.assist:
        raise Conflict(
            f"子工单 {so.id} 不是协办子工单，不能解除", code="not_assisting", role=so.role
        )
    transition_suborder(
        session, ticket, so, "release", actor=actor, event="suborder_released", reason=why
    )
    so.released_at = utcnow()
    so.release_reason = why
    _recompute_and_tell(session, settings, ticket, actor)
    return so
