"""受理告知书 (§9): rendered from config/notices.yaml, stored with its tokens, sent by SMS.

Two single-purpose secrets per notice, both only for the submitter and stored hashed (SHA-256):
the confirm token (in the link of the SMS: confirms receipt, nothing else) and the evaluation
token (authorises the submitter's own evaluation of the ticket, nothing else). Staff read the
notice with every link redacted (`Notice.body`); what the submitter was given is `sent_body`.
The raw tokens exist only while the creating transaction runs: `issued_tokens` hands them to the
code that answers the submitter (the public form's response, which finds the notice it answers
with by `issued_acceptance`, not by reading it back).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, col, select

from config.database import rowcount
from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing import events
from ticketing.errors import NotFound
from ticketing.models import Notice, Ticket, utcnow
from ticketing.notify import send_sms
from ticketing.phones import is_mainland_mobile
from ticketing.sla import to_local

TIME_FORMAT = "%Y年%m月%d日 %H:%M"
REDACTED = "[已隐去]"
_INFO_TOKENS = "ticketing.notices.tokens"
_INFO_ACCEPTANCE = "ticketing.notices.acceptance"


@dataclass(frozen=True)
class NoticeTokens:
    confirm: str
    evaluation: str


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 hex digest (64 chars). The tokens are 256-bit
    random, so an unsalted hash is enough: a copy of the database does not give them away."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# Where the submitter's links open when notices.yaml names no `links`: the public portal's pages
DEFAULT_LINKS = {"confirm": "/portal/n/{token}", "evaluate": "/portal/rate/{number}?token={token}"}


def _link(settings: Settings, kind: str, **values: str) -> str:
    links = load_yaml(settings, "notices.yaml").get("links") or {}
    template = str(links.get(kind) or DEFAULT_LINKS[kind])
    return settings.public_base_url.rstrip("/") + _render(template, values, f"links.{kind}")


def confirm_url(settings: Settings, token: str) -> str:
    """The SMS link that opens the notice's page (confirm button, the matter's progress)."""
    return _link(settings, "confirm", token=token)


def evaluate_url(settings: Settings, number: str, token: str) -> str:
    """The SMS link that opens the rating page (满意/基本满意/不满意, or 重办 with a reason)."""
    return _link(settings, "evaluate", number=number, token=token)


def issued_tokens(session: Session, notice_id: int) -> NoticeTokens | None:
    """The raw tokens of a notice created in this session's transaction (else None)."""
    return session.info.get(_INFO_TOKENS, {}).get(notice_id)


def issued_acceptance(session: Session, ticket_id: int) -> Notice | None:
    """The acceptance notice created for the ticket in this session's transaction (else None;
    one of a rolled-back transaction is no longer in the session)."""
    notice = session.info.get(_INFO_ACCEPTANCE, {}).get(ticket_id)
    return notice if notice is not None and notice in session else None


def _labels(settings: Settings) -> dict[str, dict[str, str]]:
    cats = load_yaml(settings, "categories.yaml")
    return {k: dict(cats.get(k) or {}) for k in ("categories", "urgencies", "channels")}


def _render(template: str, values: dict[str, str], name: str) -> str:
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"notices.yaml: template {name!r} has a bad placeholder: {e}") from e


def rating_notice(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    template: str,
    name: str,
    values: dict[str, str],
    kind: str,
) -> tuple[Notice, str]:
    """A notice that asks the submitter to rate (resolution, reminder, direct answer): a fresh
    single-purpose rating token stored as a digest, staff shown the text with its link redacted.
    Returns the notice and the text to send; the caller sends it its own way."""
    token = secrets.token_urlsafe(32)
    sent = _render(
        template, {**values, "evaluate_url": evaluate_url(settings, ticket.number, token)}, name
    ).strip()
    shown = _render(
        template, {**values, "evaluate_url": evaluate_url(settings, ticket.number, REDACTED)}, name
    ).strip()
    notice = Notice(
        ticket_id=ticket.id or 0,  # a stored ticket: id set
        kind=kind,
        body=shown,
        sent_body=sent,
        confirm_token=token_digest(secrets.token_urlsafe(32)),  # nothing to confirm: unusable
        evaluation_token=token_digest(token),
    )
    session.add(notice)
    session.flush()
    return notice, sent


def create_acceptance_notice(session: Session, settings: Settings, ticket: Ticket) -> Notice:
    """Render, store and (when the submitter's phone is a mainland mobile) text the acceptance
    notice; any other number gets it only where it submitted (the public form's answer)."""
    cfg = load_yaml(settings, "notices.yaml")
    labels = _labels(settings)
    tokens = NoticeTokens(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
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
        "confirm_url": confirm_url(settings, tokens.confirm),
        "evaluate_url": evaluate_url(settings, ticket.number, tokens.evaluation),
        "hotline": str(cfg.get("hotline", "")),
    }
    # staff see the same notice with the submitter's links redacted
    shown = {
        **values,
        "confirm_url": confirm_url(settings, REDACTED),
        "evaluate_url": evaluate_url(settings, ticket.number, REDACTED),
    }
    sent = _render(str(cfg["acceptance"]), values, "acceptance").strip()
    notice = Notice(
        ticket_id=ticket.id,  # type: ignore[arg-type]  # a stored ticket: id set
        kind="acceptance",
        body=_render(str(cfg["acceptance"]), shown, "acceptance").strip(),
        sent_body=sent,
        confirm_token=token_digest(tokens.confirm),
        evaluation_token=token_digest(tokens.evaluation),
    )
    session.add(notice)
    session.flush()
    session.info.setdefault(_INFO_TOKENS, {})[notice.id] = tokens
    session.info.setdefault(_INFO_ACCEPTANCE, {})[ticket.id] = notice
    outbox_id = None
    texted = is_mainland_mobile(ticket.submitter_phone)
    if texted and ticket.submitter_phone is not None:  # texted implies a number
        sms = _render(str(cfg.get("acceptance_sms") or sent), values, "acceptance_sms")
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
        # a number that is not a mainland mobile gets no SMS: the notice is shown on the page
        sms_skipped="not_mainland_mobile" if ticket.submitter_phone and not texted else None,
    )
    return notice


def confirm_notice(session: Session, token: str) -> Notice:
    """Idempotent: the first confirmation is recorded (one event), repeats return the same notice."""
    if not isinstance(token, str) or not token or len(token) > 64:
        raise NotFound("告知书不存在或链接已失效", field="token")
    notice = session.exec(select(Notice).where(Notice.confirm_token == token_digest(token))).first()
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


def notice_by_confirm_token(session: Session, token: str) -> Notice | None:
    """The acceptance notice this confirm token (an SMS link's) belongs to, else None. Reading
    it changes nothing: only `confirm_notice` does."""
    if not isinstance(token, str) or not token or len(token) > 64:
        return None
    return session.exec(
        select(Notice).where(
            Notice.confirm_token == token_digest(token), Notice.kind == "acceptance"
        )
    ).first()


def notice_for_evaluation(session: Session, ticket: Ticket, token: str) -> Notice | None:
    """The ticket's notice whose evaluation token this is (None for any other token, including
    the confirm token: each token does one thing)."""
    if not isinstance(token, str) or not token or len(token) > 64:
        return None
    notice = session.exec(
        select(Notice).where(Notice.evaluation_token == token_digest(token))
    ).first()
    return notice if notice is not None and notice.ticket_id == ticket.id else None


def paper_text(settings: Settings, notice: Notice, ticket: Ticket) -> str:
    """The notice as printed at the window and handed to the visitor: staff only have its body
    with the links redacted, and "[已隐去]" on paper helps no one. A line carrying a redacted link
    says instead where the visitor's own link went (the SMS, to a mainland mobile) and how to
    follow the matter without it (the portal's tracking page: number + SMS code, or the hotline)."""
    track = settings.public_base_url.rstrip("/") + "/portal/track"
    hotline = str(load_yaml(settings, "notices.yaml").get("hotline") or "")
    phone = ticket.submitter_phone or ""
    if is_mainland_mobile(phone):
        told = f"确认链接已通过短信发送至您尾号{phone[-4:]}的手机；"
    else:
        told = ""
    follow = f"{told}也可登录 {track}，凭工单编号和手机号查询办理进度"
    follow += f"，或致电“店小二”专线 {hotline}。" if hotline else "。"
    out: list[str] = []
    for line in notice.body.split("\n"):
        if REDACTED not in line:
            out.append(line)
        elif follow not in out:  # once, however many link lines a custom template has
            out.append(follow)
    return "\n".join(out)


_LINK_TOKEN = re.compile(
    r"(/public/notices/)[^/\s]+(/confirm)|([?&]token=)[^&\s]+|(/portal/n/)[^/?#\s]+"
)


def redact_links(text: str) -> str:
    """A notice body written before tokens were redacted, with its links' tokens hidden (used by
    the migration that redacts stored bodies)."""

    def hide(m: re.Match[str]) -> str:
        if m.group(1):
            return f"{m.group(1)}{REDACTED}{m.group(2)}"
        if m.group(4):
            return m.group(4) + REDACTED
        return m.group(3) + REDACTED

    return _LINK_TOKEN.sub(hide, text)
