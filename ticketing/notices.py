"""受理告知书 (§9): rendered from config/notices.yaml, stored with a confirm token, sent by SMS."""

from __future__ import annotations

import secrets

from sqlalchemy import update
from sqlmodel import Session, col, select

from config.database import rowcount
from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.errors import NotFound
from ticketing.models import Notice, Ticket, utcnow
from ticketing.notify import send_sms
from ticketing.sla import to_local

TIME_FORMAT = "%Y年%m月%d日 %H:%M"


def confirm_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/api/v1/public/notices/{token}/confirm"


def _labels(settings: Settings) -> dict[str, dict[str, str]]:
    cats = load_yaml(settings, "categories.yaml")
    return {k: dict(cats.get(k) or {}) for k in ("categories", "urgencies", "channels")}


def _render(template: str, values: dict[str, str], name: str) -> str:
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"notices.yaml: template {name!r} has a bad placeholder: {e}") from e


def create_acceptance_notice(session: Session, settings: Settings, ticket: Ticket) -> Notice:
    """Render, store and (when the ticket has a submitter phone) text the acceptance notice."""
    cfg = load_yaml(settings, "notices.yaml")
    labels = _labels(settings)
    token = secrets.token_urlsafe(32)  # 43 chars, fits the 64-char column
    deadline = (
        to_local(settings, ticket.deadline_at).strftime(TIME_FORMAT) if ticket.deadline_at else "—"
    )
    values = {
        "number": ticket.number,
        "channel": labels["channels"].get(ticket.channel, ticket.channel),
        "category": labels["categories"].get(ticket.category, ticket.category),
        "urgency": labels["urgencies"].get(ticket.urgency, ticket.urgency),
        "accepted_at": to_local(settings, ticket.created_at).strftime(TIME_FORMAT),
        "deadline": deadline,
        "confirm_url": confirm_url(settings, token),
        "hotline": str(cfg.get("hotline", "")),
    }
    body = _render(str(cfg["acceptance"]), values, "acceptance").strip()
    notice = Notice(
        ticket_id=ticket.id,  # type: ignore[arg-type]  # a stored ticket: id set
        kind="acceptance",
        body=body,
        confirm_token=token,
    )
    session.add(notice)
    session.flush()
    outbox_id = None
    if ticket.submitter_phone:
        sms = _render(str(cfg.get("acceptance_sms") or body), values, "acceptance_sms")
        outbox_id = send_sms(
            session, settings, ticket.submitter_phone, sms, ticket_id=ticket.id, kind="acceptance"
        ).id
    events.record(
        session,
        ticket.id,
        "system",
        "notice_created",
        notice_id=notice.id,
        kind="acceptance",
        sms_outbox_id=outbox_id,
    )
    return notice


def confirm_notice(session: Session, token: str) -> Notice:
    """Idempotent: the first confirmation is recorded (one event), repeats return the same notice."""
    if not isinstance(token, str) or not token or len(token) > 64:
        raise NotFound("告知书不存在或链接已失效", field="token")
    notice = session.exec(select(Notice).where(Notice.confirm_token == token)).first()
    if notice is None:
        raise NotFound("告知书不存在或链接已失效", field="token")
    if notice.confirmed_at is not None:
        return notice
    now = utcnow()
    changed = rowcount(
        session.execute(
            update(Notice)
            .where(col(Notice.id) == notice.id, col(Notice.confirmed_at).is_(None))
            .values(confirmed_at=now)
        )
    )
    if changed == 1:  # we won any race: exactly one event
        events.record(session, notice.ticket_id, "public", "notice_confirmed", notice_id=notice.id)
    session.refresh(notice)
    return notice
