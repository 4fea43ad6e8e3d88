"""What the submitter may see of a matter on the public portal, and nothing more.

Built from the ticket, its sub-orders and its history, it carries only: the number, channel,
category, the stage, the departments handling it (names only), the committed deadline, the
departments' replies once given (or, in summary mode, the summary a dispatcher approved),
approved extensions with the new deadline and why, and whether the notice was confirmed and the
matter rated. Never: internal notes, dispatch instructions, handler or staff names, phone numbers,
warnings, the classifier's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from config.settings import Settings
from ticketing.evaluation import submitter_may_rate
from ticketing.events import detail_time
from ticketing.lifecycle import round_suborders
from ticketing.models import (
    Evaluation,
    Notice,
    SubOrderStatus,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from ticketing.submitter_notices import SUMMARY_EVENT, department_names, summary_mode

STAGES = ("受理", "派单", "办理", "办结", "评价")


@dataclass(frozen=True)
class PublicReply:
    department: str
    text: str
    at: datetime | None


@dataclass(frozen=True)
class PublicExtension:
    department: str
    reason: str
    deadline: datetime | None
    previous_deadline: datetime | None
    at: datetime


@dataclass
class PublicView:
    number: str
    channel: str
    category: str
    status: str
    stage: int  # index into STAGES of the stage the matter is in (len(STAGES): all done)
    stage_label: str
    created_at: datetime
    deadline_at: datetime | None
    resolved_at: datetime | None
    departments: list[str] = field(default_factory=list)
    replies: list[PublicReply] = field(default_factory=list)
    summary: str | None = None
    awaiting_summary: bool = False
    extensions: list[PublicExtension] = field(default_factory=list)
    reopen_count: int = 0
    confirmed: bool = False
    rated: bool = False
    can_rate: bool = False


def _stage(ticket: Ticket, accepted: bool) -> tuple[int, str]:
    if ticket.status == TicketStatus.closed:
        return len(STAGES), "已评价，办理完毕"  # every stage done
    if ticket.status == TicketStatus.resolved:
        return 3, "已办结，待评价"
    if ticket.status == TicketStatus.reopened:
        return 1, "重办：待重新派单"
    if ticket.status == TicketStatus.dispatched:
        # 不满意 → 重办 goes straight back to the departments (ticketing.followup): say so
        redo = "重办：" if ticket.reopen_count else ""
        return (2, f"{redo}承办部门办理中") if accepted else (1, f"{redo}已派单，待部门签收")
    return 1, "已受理，待派单"


def public_view(session: Session, settings: Settings, ticket: Ticket) -> PublicView:
    """The submitter's view of `ticket` (the caller has already checked the submitter's right)."""
    subs = [s for s in round_suborders(session, ticket) if s.status != SubOrderStatus.returned]
    all_codes = [s.department_code for s in subs]
    events = list(
        session.exec(
            select(TicketEvent)
            .where(
                TicketEvent.ticket_id == ticket.id,
                col(TicketEvent.action).in_(
                    ["extension_requested", "extension_approved", SUMMARY_EVENT]
                ),
            )
            .order_by(col(TicketEvent.id))
        )
    )
    ext_codes = [str(e.detail.get("department") or "") for e in events]
    names = department_names(session, sorted(set(all_codes + ext_codes) - {""}))
    accepted = any(s.status != SubOrderStatus.dispatched for s in subs)
    stage, label = _stage(ticket, accepted)
    view = PublicView(
        number=ticket.number,
        channel=ticket.channel,
        category=ticket.category,
        status=ticket.status,
        stage=stage,
        stage_label=label,
        created_at=ticket.created_at,
        deadline_at=ticket.deadline_at,
        resolved_at=ticket.resolved_at,
        departments=list(dict.fromkeys(names.get(c, "承办部门") for c in all_codes)),
        reopen_count=ticket.reopen_count or 0,
    )
    summaries = [
        e
        for e in events
        if e.action == SUMMARY_EVENT and int(e.detail.get("round") or 0) == ticket.round
    ]
    if summary_mode(settings):
        if summaries:
            view.summary = str(summaries[-1].detail.get("text") or "")
        elif ticket.status in (TicketStatus.resolved, TicketStatus.closed):
            view.awaiting_summary = True
    else:
        view.replies = [
            PublicReply(names.get(s.department_code, "承办部门"), s.reply or "", s.replied_at)
            for s in subs
            if s.status == SubOrderStatus.replied and s.reply
        ]
    reasons: dict[int | None, str] = {}
    for e in events:
        if e.action == "extension_requested":
            reasons[e.suborder_id] = str(e.detail.get("reason") or "")
        elif e.action == "extension_approved" and e.detail.get("previous_ticket_deadline"):
            code = str(e.detail.get("department") or "")
            so = next((s for s in subs if s.id == e.suborder_id), None)
            view.extensions.append(
                PublicExtension(
                    department=names.get(code, "承办部门"),
                    reason=reasons.get(e.suborder_id, ""),
                    deadline=so.deadline_at if so is not None else None,
                    previous_deadline=_dt(e.detail.get("previous_ticket_deadline")),
                    at=e.at,
                )
            )
    view.confirmed = (
        session.exec(
            select(Notice.id).where(
                Notice.ticket_id == ticket.id,
                Notice.kind == "acceptance",
                col(Notice.confirmed_at).is_not(None),
            )
        ).first()
        is not None
    )
    view.rated = (
        session.exec(
            select(Evaluation.id).where(
                Evaluation.ticket_id == ticket.id,
                Evaluation.source == "submitter",
                Evaluation.round == ticket.round,
            )
        ).first()
        is not None
    )
    view.can_rate = submitter_may_rate(session, ticket)
    return view


def _dt(value: object) -> datetime | None:
    """A time from an event's JSON detail as the models hold times (naive UTC)."""
    d = detail_time(value)
    return None if d is None else d.astimezone(UTC).replace(tzinfo=None)
