"""The ticket and sub-order state machines, in one place.

Ticket:    pending_dispatch → dispatched → resolved → closed
                                  ↓  ↑          ↓ (unsatisfied)  ↓ (the submitter's own rating
                   (all returned) pending      reopened ←──────┘  over a staff-recorded one)
                                                  → dispatched → …
Sub-order: dispatched → accepted → replied;  dispatched/accepted → returned;
           accepted → extension_requested → accepted (approved or rejected);
           an assisting (协办) sub-order not yet replied → released (by the dispatcher)

Every status change goes through `transition_ticket` (table TICKET_TRANSITIONS, by target state)
or `transition_suborder` (table SUBORDER_ACTIONS, by action, since two actions can reach the same
state from different ones). Both refuse a move not in the table *before* touching anything, with a
Conflict naming the current and the target state, and write exactly one history event per move.
`recompute_ticket_status` derives the ticket's state from its sub-orders: the ticket resolves only
when every live sub-order of the current round has replied (returned and released ones don't
count; with a lead 主办 that means the lead and every 协办 still held) and no return of the round
still awaits the dispatcher (a department saying "not ours" is looked at: re-dispatched or closed
with a reason, ticketing.dispatch). When every sub-order has been returned the ticket goes back to
the dispatcher (pending_dispatch).

Rows are locked (SELECT … FOR UPDATE on PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE)
ticket first, then sub-order, so concurrent replies from parallel departments can't both miss
the "all replied" moment.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from ticketing import events, hooks
from ticketing.errors import Conflict, NotFound
from ticketing.models import SubOrder, SubOrderStatus, Ticket, TicketStatus, utcnow

TS = TicketStatus
SS = SubOrderStatus

TICKET_TRANSITIONS: dict[str, frozenset[str]] = {
    # resolved straight from pending: 直接答复, answered at first contact (ticketing.direct_answer)
    TS.pending_dispatch: frozenset({TS.dispatched, TS.resolved}),
    # back to pending_dispatch when every sub-order was returned
    TS.dispatched: frozenset({TS.resolved, TS.pending_dispatch}),
    TS.resolved: frozenset({TS.closed, TS.reopened}),
    TS.reopened: frozenset({TS.dispatched}),
    # a staff-recorded (回访) rating closed it and the submitter's own rating is unsatisfied
    TS.closed: frozenset({TS.reopened}),
}

# Sub-order moves are named by action, because two actions can reach the same state (accept and
# deciding an extension both lead to "accepted") from different states.
SUBORDER_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "accept": (frozenset({SS.dispatched}), SS.accepted),
    "reply": (frozenset({SS.accepted}), SS.replied),
    "return": (frozenset({SS.dispatched, SS.accepted}), SS.returned),
    "request_extension": (frozenset({SS.accepted}), SS.extension_requested),
    # approved or rejected, the department carries on handling
    "decide_extension": (frozenset({SS.extension_requested}), SS.accepted),
    # the dispatcher lets an assisting department go (it is not needed any more)
    "release": (frozenset({SS.dispatched, SS.accepted, SS.extension_requested}), SS.released),
}
ACTION_LABELS = {
    "accept": "签收",
    "reply": "回复",
    "return": "退回",
    "request_extension": "申请延期",
    "decide_extension": "审批延期",
    "release": "解除协办",
}
# The same machine as a plain state graph (for documentation and the tests).
SUBORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    st: frozenset(to for frm, to in SUBORDER_ACTIONS.values() if st in frm) for st in SS
}

TICKET_LABELS: dict[str, str] = {
    TS.pending_dispatch: "待派单",
    TS.dispatched: "办理中",
    TS.resolved: "已办结",
    TS.closed: "已关闭",
    TS.reopened: "已重启",
}
SUBORDER_LABELS: dict[str, str] = {
    SS.dispatched: "已派发",
    SS.accepted: "已签收",
    SS.extension_requested: "延期申请中",
    SS.replied: "已回复",
    SS.returned: "已退回",
    SS.released: "已解除协办",
}

# Ticket states in which a dispatcher may (re-)dispatch.
DISPATCHABLE = frozenset({TS.pending_dispatch, TS.reopened, TS.dispatched})


def _ticket_label(s: str) -> str:
    """The state as users read it (the code itself is in the error's details)."""
    return f"“{TICKET_LABELS.get(s, s)}”"


def _sub_label(s: str) -> str:
    return f"“{SUBORDER_LABELS.get(s, s)}”"


def check_ticket_transition(ticket: Ticket, to: str) -> None:
    if to not in TICKET_TRANSITIONS.get(ticket.status, frozenset()):
        raise Conflict(
            f"工单 {ticket.number} 当前状态为{_ticket_label(ticket.status)}，不能变更为{_ticket_label(to)}",
            code="illegal_transition",
            entity="ticket",
            current=ticket.status,
            target=to,
        )


def check_suborder_action(so: SubOrder, action: str) -> str:
    """The state `action` leads to, or Conflict naming the current and the target state."""
    allowed, to = SUBORDER_ACTIONS[action]
    if so.status not in allowed:
        raise Conflict(
            f"子工单 {so.id}（{so.department_code}）当前状态为{_sub_label(so.status)}，"
            f"不能{ACTION_LABELS[action]}（变更为{_sub_label(to)}）",
            code="illegal_transition",
            entity="suborder",
            action=action,
            current=so.status,
            target=to,
        )
    return to


def transition_ticket(
    session: Session, ticket: Ticket, to: str, *, actor: str, action: str, **detail: Any
) -> None:
    check_ticket_transition(ticket, to)
    before = ticket.status
    now = utcnow()
    ticket.status = to
    ticket.updated_at = now
    if to == TS.resolved:
        ticket.resolved_at = now
    elif to == TS.closed:
        ticket.closed_at = now
    elif to == TS.reopened:
        ticket.resolved_at = None  # the previous round's resolution stays in the history
    session.add(ticket)
    moved: dict[str, Any] = {"from": before, "to": to}
    events.record(session, ticket.id, actor, action, **moved, **detail)
    hooks.after_ticket_move(session, ticket, before, to)


def transition_suborder(
    session: Session,
    ticket: Ticket,
    so: SubOrder,
    action: str,
    *,
    actor: str,
    event: str,
    **detail: Any,
) -> None:
    """Apply a sub-order action (see SUBORDER_ACTIONS) and record `event` for it."""
    to = check_suborder_action(so, action)
    before = so.status
    so.status = to
    session.add(so)
    ticket.updated_at = utcnow()
    session.add(ticket)
    events.record(
        session,
        ticket.id,
        actor,
        event,
        suborder_id=so.id,
        department=so.department_code,
        **{"from": before, "to": to},
        **detail,
    )
    hooks.after_suborder_move(session, ticket, so)


def lock_ticket(session: Session, ticket_id: int | None) -> Ticket:
    """The ticket, re-read under a row lock (fresh values, not the identity map's stale copy)."""
    t = session.exec(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if t is None:
        raise NotFound(f"工单不存在：{ticket_id}", ticket_id=ticket_id)
    return t


def lock_suborder(session: Session, suborder_id: int) -> tuple[Ticket, SubOrder]:
    """Ticket then sub-order, both locked (always in this order: no lock-order deadlocks), read
    fresh in one statement. PostgreSQL's executor locks the rows of FOR UPDATE OF in the order
    named there (its row marks follow that list; tests/ticketing/test_lifecycle.py checks it):
    the ticket's first. SQLite has no row locks: a write transaction already holds the whole
    database (BEGIN IMMEDIATE, config.database)."""
    row = session.exec(
        select(Ticket, SubOrder)
        .join(SubOrder, col(SubOrder.ticket_id) == Ticket.id)
        .where(SubOrder.id == suborder_id)
        .with_for_update(of=[Ticket, SubOrder])
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise NotFound(f"子工单不存在：{suborder_id}", suborder_id=suborder_id)
    return row[0], row[1]


def round_suborders(session: Session, ticket: Ticket) -> list[SubOrder]:
    """Every sub-order of the ticket's current round, oldest first."""
    return list(
        session.exec(
            select(SubOrder)
            .where(SubOrder.ticket_id == ticket.id, SubOrder.round == ticket.round)
            .order_by(col(SubOrder.id))
        )
    )


DROPPED = frozenset({SS.returned, SS.released})


def live_suborders(session: Session, ticket: Ticket) -> list[SubOrder]:
    """Sub-orders of the current round that still count (not returned, not released)."""
    return [s for s in round_suborders(session, ticket) if s.status not in DROPPED]


def awaiting_returns(subs: list[SubOrder]) -> list[SubOrder]:
    """Returned sub-orders the dispatcher has not yet handled (re-dispatched or closed)."""
    return [s for s in subs if s.status == SS.returned and s.return_handled_at is None]


def recompute_ticket_status(session: Session, ticket: Ticket, *, actor: str = "system") -> str:
    """Derive a dispatched ticket's state from its current-round sub-orders (recompute_round)."""
    return recompute_round(session, ticket, actor=actor)[0]


def recompute_round(
    session: Session, ticket: Ticket, *, actor: str = "system"
) -> tuple[str, list[SubOrder]]:
    """Derive a dispatched ticket's state from its current-round sub-orders.

    - no live sub-order left (all returned)         → pending_dispatch, manual, for the dispatcher
    - every live sub-order replied (at least one), and no return awaiting the dispatcher
                                                    → resolved
    - every live sub-order replied but a return awaits the dispatcher → unchanged, with a
      "resolution_held" event naming the returns
    - otherwise                                     → unchanged
    Tickets in other states are left alone (their state is driven by dispatch/evaluation).
    Returns the status and the round's sub-orders it read (none for those other states): what
    the submitter is then told of the replies reuses them instead of reading them again.
    """
    if ticket.status != TS.dispatched:
        return ticket.status, []
    session.flush()
    subs = round_suborders(session, ticket)
    live = [s for s in subs if s.status not in DROPPED]
    if not live:
        ticket.dispatch_mode = "manual"
        transition_ticket(
            session,
            ticket,
            TS.pending_dispatch,
            actor=actor,
            action="returned_to_dispatcher",
            reason="全部子工单已退回，待派单员重新派单",
        )
        return ticket.status, subs
    if not all(s.status == SS.replied for s in live):
        return ticket.status, subs
    waiting = awaiting_returns(subs)
    if waiting:
        events.record(
            session,
            ticket.id,
            actor,
            "resolution_held",
            reason="有部门退回的子工单待派单员处理（重新派单或说明理由后关闭），暂不办结",
            returned=[s.id for s in waiting],
            departments=[s.department_code for s in waiting],
        )
    else:
        transition_ticket(
            session,
            ticket,
            TS.resolved,
            actor=actor,
            action="resolved",
            departments=[s.department_code for s in live],
            round=ticket.round,
        )
    return ticket.status, subs
