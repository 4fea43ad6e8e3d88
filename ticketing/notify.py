"""Outbound SMS through an outbox: the row is written in the caller's transaction, delivered by an RQ job.

Why an outbox: the notice must not be lost when Redis or Twilio is down, and must not be sent for
an intake that rolled back. `send_sms` adds a `pending` OutboxMessage and, only once the session
commits, enqueues `deliver` on the "notify" queue. If Redis is unreachable the row simply stays
`pending`; `flush_pending(settings)` (run by the scheduler / at start-up) enqueues it again.

Delivery: Twilio's Messages API when twilio_account_sid, twilio_auth_token and twilio_from_number
are all set, otherwise the "logged outbox" (status `logged` plus a structured log line; the phone
is masked). `deliver` is idempotent: it claims the row with one conditional UPDATE
(pending → sending), so a retried or duplicated job never sends twice. A crash between claim and
provider answer leaves the row `sending` (at-most-once: better than a duplicate SMS).

The Twilio auth token never travels through Redis: the job carries a settings snapshot without
secrets and the worker reads the token from its own environment (CALLCENTER_TWILIO_AUTH_TOKEN).
CALLCENTER_TWILIO_API_BASE (optional) points the Twilio client at another base URL (a proxy, or a
local stand-in in tests).
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import structlog
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.after_commit import after_commit
from config.database import make_engine, rowcount, session_scope
from config.queues import get_queue
from config.redis import redis_url
from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.models import OutboxMessage, utcnow
from ticketing.phones import mask_phone, normalise_phone

log = structlog.get_logger("ticketing.notify")

MAX_BODY = 2000
MAX_ATTEMPTS = 3
_INFO_PENDING = "ticketing.notify.pending"
# What a delivery worker needs from the sender's settings (no secrets).
_SNAPSHOT_FIELDS = {
    "data_dir",
    "config_dir",
    "database_url",
    "redis_url",
    "redis_namespace",
    "timezone",
    "twilio_account_sid",
    "twilio_from_number",
}


def send_sms(
    session: Session,
    settings: Settings,
    to_phone: str,
    body: str,
    *,
    ticket_id: int | None = None,
    kind: str = "sms",
) -> OutboxMessage:
    """Queue an SMS: pending outbox row now, delivery job after the caller's commit."""
    phone = normalise_phone(to_phone)
    text = (body or "").strip()
    if not text:
        raise InvalidInput("短信内容为空", field="body")
    if len(text) > MAX_BODY:
        raise InvalidInput(f"短信内容过长（最多{MAX_BODY}字）", field="body")
    msg = OutboxMessage(
        ticket_id=ticket_id, to_phone=phone, body=text, kind=kind[:20], status="pending"
    )
    session.add(msg)
    session.flush()
    _enqueue_after_commit(session, settings, msg.id)  # type: ignore[arg-type]  # flushed: id set
    return msg


def _enqueue_after_commit(session: Session, settings: Settings, outbox_id: int) -> None:
    after_commit(session, _INFO_PENDING, [(settings, outbox_id)], _enqueue_all)


def _enqueue_all(items: list[tuple[Settings, int]]) -> None:
    by_settings: dict[int, tuple[Settings, list[int]]] = {}
    for settings, oid in items:
        by_settings.setdefault(id(settings), (settings, []))[1].append(oid)
    for settings, ids in by_settings.values():
        try:
            enqueue(settings, ids)
        except Exception:  # the commit already happened; the rows stay pending for flush_pending
            log.exception("sms_enqueue_failed", outbox_ids=ids)


def _snapshot(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(mode="json", include=_SNAPSHOT_FIELDS)


def enqueue(settings: Settings, outbox_ids: list[int]) -> int:
    """Enqueue delivery jobs; returns how many were enqueued (0 when Redis is unreachable)."""
    if not outbox_ids:
        return 0
    from rq import Retry

    snap = _snapshot(settings)
    try:
        queue = get_queue(settings, "notify", conn=_redis(redis_url(settings)))
        for oid in outbox_ids:
            queue.enqueue_call(
                "ticketing.notify.deliver",
                args=(oid, snap),
                retry=Retry(max=MAX_ATTEMPTS - 1, interval=[30, 300]),
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
                description=f"sms outbox {oid}",
            )
    except (redis.exceptions.RedisError, RuntimeError, OSError) as e:
        log.warning("sms_enqueue_redis_down", outbox_ids=outbox_ids, error=str(e))
        return 0
    return len(outbox_ids)


def flush_pending(
    settings: Settings, *, limit: int = 1000, older_than: timedelta | None = None
) -> int:
    """Re-enqueue outbox rows still pending (e.g. Redis was down at commit). Safe to repeat:
    delivery is idempotent. At start-up every pending row; from the scheduler only rows never
    attempted and older than `older_than` (a younger one may be waiting in the queue, and a row
    with attempts is RQ's to retry)."""
    q = select(OutboxMessage.id).where(OutboxMessage.status == "pending")
    if older_than is not None:
        q = q.where(
            OutboxMessage.attempts == 0,
            OutboxMessage.created_at <= utcnow() - older_than,
        )
    with session_scope(_engine(settings.resolved_database_url), read_only=True) as s:
        ids = [i for i in s.exec(q.order_by(col(OutboxMessage.id)).limit(limit)) if i is not None]
    return enqueue(settings, ids)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return make_engine(url)


@lru_cache(maxsize=8)
def _redis(url: str) -> redis.Redis:
    """One pooled client per URL: a new connection per enqueue cost more than the intake itself."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def _finish(engine: Engine, outbox_id: int, **values: Any) -> None:
    with session_scope(engine) as s:
        s.execute(update(OutboxMessage).where(col(OutboxMessage.id) == outbox_id).values(**values))


def deliver(outbox_id: int, snapshot: dict[str, Any]) -> str:
    """RQ job: send one outbox row. Returns the final status ("skipped" if someone else had it)."""
    settings = Settings(**snapshot)
    engine = _engine(settings.resolved_database_url)
    with session_scope(engine) as s:
        claimed = rowcount(
            s.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == outbox_id, col(OutboxMessage.status) == "pending")
                .values(status="sending", attempts=OutboxMessage.attempts + 1)
            )
        )
        if claimed != 1:
            return "skipped"
        msg = s.get_one(OutboxMessage, outbox_id)  # claimed just now: it exists
        to, body, attempts = msg.to_phone, msg.body, msg.attempts
        ticket_id, kind = msg.ticket_id, msg.kind

    sid, from_number = settings.twilio_account_sid, settings.twilio_from_number
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    if not (sid or from_number):
        log.info(
            "sms_logged",
            outbox_id=outbox_id,
            ticket_id=ticket_id,
            kind=kind,
            to=mask_phone(to),
            chars=len(body),
        )
        _finish(engine, outbox_id, status="logged", provider="log", sent_at=utcnow())
        return "logged"
    if not (sid and token and from_number):
        _finish(
            engine,
            outbox_id,
            status="failed",
            provider="twilio",
            error="Twilio is partly configured: account SID, auth token (worker environment) "
            "and from-number are all required",
        )
        log.error("sms_twilio_misconfigured", outbox_id=outbox_id)
        return "failed"
    return _send_twilio(engine, outbox_id, sid, token, from_number, to, body, attempts)


def _send_twilio(
    engine: Engine,
    outbox_id: int,
    sid: str,
    token: str,
    from_number: str,
    to: str,
    body: str,
    attempts: int,
) -> str:
    from requests import RequestException
    from twilio.base.exceptions import TwilioException, TwilioRestException
    from twilio.rest import Client

    try:
        client = Client(sid, token, http_client=_http_client())
        sent = client.messages.create(to=to, from_=from_number, body=body)
    except TwilioRestException as e:
        transient = e.status >= 500 or e.status == 429
        return _failed(engine, outbox_id, f"twilio {e.status}: {e.msg}", transient, attempts, e)
    except (TwilioException, RequestException, OSError) as e:
        return _failed(engine, outbox_id, f"twilio unreachable: {e}", True, attempts, e)
    _finish(
        engine,
        outbox_id,
        status="sent",
        provider="twilio",
        provider_id=(sent.sid or "")[:64],
        sent_at=utcnow(),
        error=None,
    )
    log.info("sms_sent", outbox_id=outbox_id, to=mask_phone(to), provider_id=sent.sid)
    return "sent"


def _failed(
    engine: Engine, outbox_id: int, error: str, transient: bool, attempts: int, exc: Exception
) -> str:
    if transient and attempts < MAX_ATTEMPTS:
        # back to pending so the RQ retry (or flush_pending) can claim it again
        _finish(engine, outbox_id, status="pending", provider="twilio", error=error[:1000])
        log.warning("sms_retry", outbox_id=outbox_id, attempts=attempts, error=error)
        raise exc
    _finish(engine, outbox_id, status="failed", provider="twilio", error=error[:1000])
    log.error("sms_failed", outbox_id=outbox_id, attempts=attempts, error=error)
    return "failed"


def _http_client() -> Any:
    """Twilio's own HTTP client, optionally re-pointed at CALLCENTER_TWILIO_API_BASE."""
    from twilio.http.http_client import TwilioHttpClient

    base = os.environ.get("CALLCENTER_TWILIO_API_BASE")
    if not base:
        return None
    target = urlsplit(base)

    class _Rebased(TwilioHttpClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = urlsplit(url)
            url = urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))
            return super().request(method, url, *args, **kwargs)

    return _Rebased(timeout=10)
