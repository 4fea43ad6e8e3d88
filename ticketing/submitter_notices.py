"""What the submitter is told after the acceptance notice, and when (issue #18).

- Resolution: the departments' replies (notices.yaml `resolution_reply: department`) or a summary
  a dispatcher approves (`summary`: nothing is sent until `approve_summary`), with a fresh rating
  link. The link's token is single-purpose and stored as a digest on a Notice of kind
  "resolution" (like the acceptance notice's evaluation token); staff see the text redacted.
- An approved extension that moves the committed deadline: the new deadline and why.
- 重办 (reopened after an unsatisfied rating): the new committed deadline.
- Returned to the dispatcher: nothing (the committed deadline stands until re-dispatch).

Texts come from notices.yaml and go through the SMS outbox (ticketing.notify), to mainland
mobiles only. Every message is recorded as a `submitter_told` event (kind, outbox id, never the
phone number).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from config.loader import load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.department_cache import cached_departments
from ticketing.errors import Conflict, InvalidInput
from ticketing.lifecycle import round_suborders
from ticketing.models import Notice, SubOrder, SubOrderStatus, Ticket, TicketStatus
from ticketing.notices import (
    TIME_FORMAT,
    _render,
    rating_notice,
)
from ticketing.notify import send_sms
from ticketing.phones import is_mainland_mobile
from ticketing.sla import to_local
from ticketing.text import normalise_text

SUMMARY_EVENT = "resolution_summary_approved"
AWAITING_EVENT = "resolution_summary_awaited"
MAX_SUMMARY = 1000


def _cfg(settings: Settings) -> dict:
    return load_yaml(settings, "notices.yaml")


def summary_mode(settings: Settings) -> bool:
    """Whether a dispatcher approves what the submitter is told on resolution."""
    return str(_cfg(settings).get("resolution_reply") or "department").strip() == "summary"


def _local(settings: Settings, dt: datetime | None) -> str:
    return to_local(settings, dt).strftime(TIME_FORMAT) if dt else "—"


def department_names(session: Session, codes: list[str]) -> dict[str, str]:
    """Names by code, from the per-process department snapshot (ticketing.department_cache:
    cleared on this process's own department changes, another process's seen within its TTL),
    not a query per notice."""
    if not codes:
        return {}
    return {code: d.name for code, d in cached_departments(session, codes).items()}


def replies_text(session: Session, ticket: Ticket, subs: list[SubOrder] | None = None) -> str:
    """The current round's replies, each under its department's name (`subs`: the round's
    sub-orders when the caller has them already)."""
    if subs is None:
        subs = round_suborders(session, ticket)
    live = [s for s in subs if s.status == SubOrderStatus.replied]
    names = department_names(session, [s.department_code for s in live])
    parts = [f"{names.get(s.department_code, '承办部门')}：{_clause(s.reply)}" for s in live]
    return "；".join(parts) + ("。" if parts else "")


def _clause(reply: str | None) -> str:
    """A reply as one clause of the joined text: no end punctuation of its own to double up
    with the "；" between departments (“…领取。；税务局：…”)."""
    return (reply or "").strip().rstrip("。；;，,. ")


def _text(session: Session, settings: Settings, ticket: Ticket, kind: str, sms: str) -> int | None:
    """Queue `sms` to the submitter (mainland mobiles only) and record that it was told."""
    phone = ticket.submitter_phone
    outbox_id = None
    if phone is not None and is_mainland_mobile(phone):
        outbox_id = send_sms(session, settings, phone, sms, ticket_id=ticket.id, kind=kind).id
    events.record(
        session,
        ticket.id,
        "system",
        "submitter_told",
        kind=kind,
        sms_outbox_id=outbox_id,
        sms_skipped=None if outbox_id else "not_mainland_mobile",
    )
    return outbox_id


def _resolution_notice(
    session: Session, settings: Settings, ticket: Ticket, reply: str, kind: str
) -> Notice:
    cfg = _cfg(settings)
    limit = int(cfg.get("resolution_reply_chars") or 300)
    short = reply if len(reply) <= limit else reply[: limit - 1] + "…"
    values = {"number": ticket.number, "reply": short, "hotline": str(cfg.get("hotline", ""))}
    template = str(cfg.get("resolved_sms") or "")
    if not template:
        raise InvalidInput("notices.yaml 缺少 resolved_sms 模板", field="resolved_sms")
    notice, sent = rating_notice(
        session, settings, ticket, template, "resolved_sms", values, "resolution"
    )
    _text(session, settings, ticket, kind, sent)
    return notice


def tell_resolved(
    session: Session, settings: Settings, ticket: Ticket, subs: list[SubOrder] | None = None
) -> Notice | None:
    """The ticket just resolved: the departments' replies and the rating link, or (summary mode)
    a note that the dispatcher's summary is awaited. `subs`: the round's sub-orders, if read
    already (lifecycle.recompute_round)."""
    if ticket.status != TicketStatus.resolved:
        return None
    if summary_mode(settings):
        events.record(session, ticket.id, "system", AWAITING_EVENT, round=ticket.round)
        return None
    return _resolution_notice(
        session, settings, ticket, replies_text(session, ticket, subs), "resolved"
    )


def approve_summary(
    session: Session, settings: Settings, ticket: Ticket, text: str, *, actor: str
) -> Notice:
    """A dispatcher approves what the submitter is told of a resolved ticket (summary mode)."""
    body = normalise_text(text)
    if not body:
        raise InvalidInput("请填写告知提交人的办理结果摘要", field="text")
    if len(body) > MAX_SUMMARY:
        raise InvalidInput(f"摘要不能超过 {MAX_SUMMARY} 个字", field="text")
    if ticket.status != TicketStatus.resolved:
        raise Conflict("只有已办结的工单可以发送办理结果摘要", code="illegal_transition")
    events.record(session, ticket.id, actor, SUMMARY_EVENT, round=ticket.round, text=body)
    return _resolution_notice(session, settings, ticket, body, "resolved")


def tell_extension(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    *,
    previous_deadline: datetime | None,
    reason: str | None,
) -> None:
    """An approved extension moved the committed deadline: the new one and why."""
    cfg = _cfg(settings)
    template = str(cfg.get("extension_sms") or "")
    if not template or ticket.deadline_at is None:
        return
    values = {
        "number": ticket.number,
        "deadline": _local(settings, ticket.deadline_at),
        "previous_deadline": _local(settings, previous_deadline),
        "reason": (reason or "办理需要")[:200],
        "hotline": str(cfg.get("hotline", "")),
    }
    _text(session, settings, ticket, "extension", _render(template, values, "extension_sms"))


def tell_reopened(session: Session, settings: Settings, ticket: Ticket) -> None:
    """重办: the new committed deadline."""
    cfg = _cfg(settings)
    template = str(cfg.get("reopened_sms") or "")
    if not template:
        return
    values = {
        "number": ticket.number,
        "deadline": _local(settings, ticket.deadline_at),
        "hotline": str(cfg.get("hotline", "")),
    }
    _text(session, settings, ticket, "reopened", _render(template, values, "reopened_sms"))
