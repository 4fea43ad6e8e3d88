"""Outbound SMS through an outbox: the row is written in the caller's transaction, delivered by an RQ job.

Why an outbox: the notice must not be lost when Redis or Twilio is down, and must not be sent for
an intake that rolled back. `send_sms` adds a `pending` OutboxMessage and, only once the session
commits, enqueues `deliver` on the "notify" queue. If Redis is unreachable the row simply stays
`pending`; `flush_pending(settings)` (run by the scheduler / at start-up) enqueues it again.

Delivery in batches (issue #17 §7: one RQ job per message let 16,867 notices wait after a burst):
each commit enqueues ONE `deliver_batch` job for its rows (chunks of BATCH_SIZE), and a job also
sweeps up other never-attempted pending rows, oldest first, up to BATCH_SIZE: when jobs pile up,
the first takes the backlog and the rest find nothing to do. Rows are claimed with one conditional
UPDATE … RETURNING (pending → sending), so a retried or duplicated job never sends twice, and
finished with one statement per outcome. Twilio's API takes one message per request: a batch
sends them on TWILIO_CONCURRENCY threads. bench/sms_outbox.py measures the drain rate against the
intake rate. A crash between claim and provider answer leaves the row `sending` (at-most-once:
better than a duplicate SMS).

Providers, chosen by settings.sms_gateway: "outbox" (the default: the "logged outbox", status
`logged` plus a structured log line; the phone is masked), "twilio" (Twilio's Messages API: needs
twilio_account_sid, twilio_auth_token and twilio_from_number) or "http" (a signed JSON POST to a
provider's gateway, ticketing.sms_gateway). Left unset, Twilio is used when any of its settings is
given (as before the setting existed), otherwise the logged outbox.

The Twilio auth token never travels through Redis: the job carries a settings snapshot without
secrets and the worker reads the token from its own environment (CALLCENTER_TWILIO_AUTH_TOKEN).
CALLCENTER_TWILIO_API_BASE (optional) points the Twilio client at another base URL (a proxy, or a
local stand-in in tests).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.after_commit import after_commit
from config.bulk import insert_rows
from config.database import make_engine, session_scope
from config.queues import get_queue
from config.redis import redis_url
from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.models import OutboxMessage, utcnow
from ticketing.phones import mask_phone, normalise_phone

log = structlog.get_logger("ticketing.notify")

MAX_BODY = 2000
MAX_ATTEMPTS = 3
BATCH_SIZE = 500  # rows claimed (and sent) at a time
DRAIN_BUDGET_S = 30.0  # a job drains for this long at most, then hands over to a fresh job
DRAIN_KEY_TTL = 60  # seconds a "delivery job waiting" mark lives (a lost job is not waited for)
TWILIO_CONCURRENCY = 16  # requests in flight per batch (Twilio allows far more per account)
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
    "sms_gateway",
    "sms_http_url",
    "sms_http_key_id",
    "sms_http_sign_name",
    "sms_http_timeout_s",
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
    _enqueue_after_commit(session, settings, msg.id or 0)  # flushed: id set
    return msg


def send_sms_many(
    session: Session, settings: Settings, items: list[tuple[str, str, int | None, str]]
) -> int:
    """Queue many SMS at once ((phone, body, ticket_id, kind) each, checked as `send_sms` does):
    one multi-row insert of pending outbox rows, one delivery batch after the caller's commit."""
    if not items:
        return 0
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for to_phone, body, ticket_id, kind in items:
        text = (body or "").strip()
        if not text:
            raise InvalidInput("短信内容为空", field="body")
        if len(text) > MAX_BODY:
            raise InvalidInput(f"短信内容过长（最多{MAX_BODY}字）", field="body")
        rows.append(
            {
                "ticket_id": ticket_id,
                "to_phone": normalise_phone(to_phone),
                "body": text,
                "kind": kind[:20],
                "status": "pending",
                "attempts": 0,
                "created_at": now,
            }
        )
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    ids = insert_rows(session, table, rows, returning="id")
    after_commit(session, _INFO_PENDING, [(settings, int(i)) for i in ids], _enqueue_all)
    return len(rows)


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


def _drain_key(settings: Settings) -> str:
    return f"{settings.redis_namespace}:notify:drain-queued"


def enqueue(settings: Settings, outbox_ids: list[int], *, coalesce: bool = True) -> int:
    """Enqueue delivery for these rows; returns how many rows are taken care of (0 when Redis is
    unreachable). With `coalesce`, nothing is enqueued while a delivery job is already waiting
    (a Redis key, set NX with a TTL): that job, once it starts, sweeps up these rows too."""
    if not outbox_ids:
        return 0
    from rq import Retry

    snap = _snapshot(settings)
    try:
        conn = _redis(redis_url(settings))
        if coalesce and not conn.set(_drain_key(settings), "1", nx=True, ex=DRAIN_KEY_TTL):
            return len(outbox_ids)
        queue = get_queue(settings, "notify", conn=conn)
        for i in range(0, len(outbox_ids), BATCH_SIZE):
            chunk = list(outbox_ids[i : i + BATCH_SIZE])
            queue.enqueue_call(
                "ticketing.notify.deliver_batch",
                args=(chunk, snap),
                retry=Retry(max=MAX_ATTEMPTS - 1, interval=[30, 300]),
                result_ttl=600,
                failure_ttl=7 * 24 * 3600,
                description=f"sms outbox {chunk[0]}..{chunk[-1]} ({len(chunk)})",
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
    return enqueue(settings, ids, coalesce=False)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return make_engine(url)


@lru_cache(maxsize=8)
def _redis(url: str) -> redis.Redis:
    """One pooled client per URL: a new connection per enqueue cost more than the intake itself."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


_T = OutboxMessage.__table__  # type: ignore[attr-defined]


def _claim(engine: Engine, outbox_ids: list[int], sweep: int) -> list[Any]:
    """Claim these rows (pending → sending, attempts + 1) and up to `sweep` other never-attempted
    pending rows, oldest first, in one transaction; returns the claimed rows."""
    with session_scope(engine) as s:
        rows = (
            list(
                s.execute(
                    _T.update()
                    .where(_T.c.id.in_(outbox_ids), _T.c.status == "pending")
                    .values(status="sending", attempts=_T.c.attempts + 1)
                    .returning(
                        _T.c.id, _T.c.to_phone, _T.c.body, _T.c.ticket_id, _T.c.kind, _T.c.attempts
                    )
                )
            )
            if outbox_ids
            else []
        )
        if sweep > 0:
            backlog = (
                select(_T.c.id)
                .where(_T.c.status == "pending", _T.c.attempts == 0)
                .order_by(_T.c.id)
                .limit(sweep)
                .scalar_subquery()
            )
            rows += list(
                s.execute(
                    _T.update()
                    .where(_T.c.id.in_(backlog), _T.c.status == "pending")
                    .values(status="sending", attempts=_T.c.attempts + 1)
                    .returning(
                        _T.c.id, _T.c.to_phone, _T.c.body, _T.c.ticket_id, _T.c.kind, _T.c.attempts
                    )
                )
            )
    return rows


def _finish_many(engine: Engine, outcomes: list[tuple[int, dict[str, Any]]]) -> None:
    """Record many outcomes in one transaction (one UPDATE per distinct set of values)."""
    if not outcomes:
        return
    groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
    for oid, values in outcomes:
        key = repr(sorted(values.items()))
        groups.setdefault(key, (values, []))[1].append(oid)
    with session_scope(engine) as s:
        for values, ids in groups.values():
            s.execute(_T.update().where(_T.c.id.in_(ids)).values(**values))


def deliver(outbox_id: int, snapshot: dict[str, Any]) -> str:
    """RQ job (kept for jobs queued before batching): send one outbox row. Returns its final
    status ("skipped" if someone else had it)."""
    return deliver_batch([outbox_id], snapshot, sweep=False).get(outbox_id, "skipped")


def deliver_batch(
    outbox_ids: list[int], snapshot: dict[str, Any], *, sweep: bool = True
) -> dict[int, str]:
    """RQ job: send these outbox rows and, with `sweep`, every other waiting one, BATCH_SIZE at a
    time, until none is left (or DRAIN_BUDGET_S passed: a fresh job takes over). Returns
    id → final status for the rows this job claimed. Raises after recording everything when a
    transient provider error left rows pending, so RQ retries (the retry claims only those)."""
    settings = Settings(**snapshot)
    engine = _engine(settings.resolved_database_url)
    if sweep:  # from now on a commit queues a new job: this one may already be past its rows
        with contextlib.suppress(redis.exceptions.RedisError, OSError):  # it expires anyway
            _redis(redis_url(settings)).delete(_drain_key(settings))
    out: dict[int, str] = {}
    ids = list(outbox_ids)
    until = time.monotonic() + DRAIN_BUDGET_S
    while True:
        rows = _claim(engine, ids, max(0, BATCH_SIZE - len(ids)) if sweep else 0)
        ids = []
        if not rows:
            return out
        out.update(_deliver_rows(settings, engine, rows))
        if not sweep:
            return out
        if time.monotonic() > until:
            enqueue(settings, [rows[-1].id], coalesce=False)  # what is left: a fresh job
            return out


def gateway(settings: Settings) -> str:
    """The SMS provider in use: settings.sms_gateway, else Twilio when any of its settings is
    given, else the logged outbox."""
    if settings.sms_gateway:
        return settings.sms_gateway
    if settings.twilio_account_sid or settings.twilio_from_number:
        return "twilio"
    return "outbox"


def _deliver_rows(settings: Settings, engine: Engine, rows: list[Any]) -> dict[int, str]:
    """Send claimed rows through the configured provider and record the outcomes."""
    sid, from_number = settings.twilio_account_sid, settings.twilio_from_number
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    provider = gateway(settings)
    if provider == "http":
        return _send_http_batch(settings, engine, rows)
    if provider == "outbox":
        now = utcnow()
        for r in rows:
            log.info(
                "sms_logged",
                outbox_id=r.id,
                ticket_id=r.ticket_id,
                kind=r.kind,
                to=mask_phone(r.to_phone),
                chars=len(r.body),
            )
        _finish_many(
            engine, [(r.id, {"status": "logged", "provider": "log", "sent_at": now}) for r in rows]
        )
        return {r.id: "logged" for r in rows}
    if not (sid and token and from_number):
        error = (
            "Twilio is partly configured: account SID, auth token (worker environment) "
            "and from-number are all required"
        )
        _finish_many(
            engine,
            [(r.id, {"status": "failed", "provider": "twilio", "error": error}) for r in rows],
        )
        log.error("sms_twilio_misconfigured", outbox_ids=[r.id for r in rows])
        return {r.id: "failed" for r in rows}
    return _send_twilio_batch(engine, sid, token, from_number, rows)


def _send_twilio_batch(
    engine: Engine, sid: str, token: str, from_number: str, rows: list[Any]
) -> dict[int, str]:
    from concurrent.futures import ThreadPoolExecutor

    from twilio.rest import Client

    client = Client(sid, token, http_client=_http_client())
    with ThreadPoolExecutor(max_workers=min(TWILIO_CONCURRENCY, len(rows))) as pool:
        results = list(pool.map(lambda r: _send_one(client, from_number, r), rows))
    outcomes = [(r.id, values) for r, (_status, values, _exc) in zip(rows, results, strict=True)]
    _finish_many(engine, outcomes)
    statuses = {r.id: status for r, (status, _v, _e) in zip(rows, results, strict=True)}
    retry = [exc for (status, _v, exc) in results if status == "pending" and exc is not None]
    if retry:
        raise retry[0]  # RQ retries the job; only the rows put back to pending are claimed again
    return statuses


def _send_one(
    client: Any, from_number: str, r: Any
) -> tuple[str, dict[str, Any], Exception | None]:
    """One message: (status, the row's new values, the exception to retry on)."""
    from requests import RequestException
    from twilio.base.exceptions import TwilioException, TwilioRestException

    try:
        sent = client.messages.create(to=r.to_phone, from_=from_number, body=r.body)
    except TwilioRestException as e:
        transient = e.status >= 500 or e.status == 429
        return _failed(r.id, f"twilio {e.status}: {e.msg}", transient, r.attempts, e)
    except (TwilioException, RequestException, OSError) as e:
        return _failed(r.id, f"twilio unreachable: {e}", True, r.attempts, e)
    log.info("sms_sent", outbox_id=r.id, to=mask_phone(r.to_phone), provider_id=sent.sid)
    return (
        "sent",
        {
            "status": "sent",
            "provider": "twilio",
            "provider_id": (sent.sid or "")[:64],
            "sent_at": utcnow(),
            "error": None,
        },
        None,
    )


def _failed(
    outbox_id: int,
    error: str,
    transient: bool,
    attempts: int,
    exc: Exception,
    provider: str = "twilio",
) -> tuple[str, dict[str, Any], Exception | None]:
    if transient and attempts < MAX_ATTEMPTS:
        # back to pending so the RQ retry (or flush_pending) can claim it again
        log.warning("sms_retry", outbox_id=outbox_id, attempts=attempts, error=error)
        return "pending", {"status": "pending", "provider": provider, "error": error[:1000]}, exc
    log.error("sms_failed", outbox_id=outbox_id, attempts=attempts, error=error)
    return "failed", {"status": "failed", "provider": provider, "error": error[:1000]}, None


class GatewayError(Exception):
    """A transient failure of the HTTP SMS gateway (raised so RQ retries the job)."""


def _send_http_batch(settings: Settings, engine: Engine, rows: list[Any]) -> dict[int, str]:
    """The signed HTTP gateway (ticketing.sms_gateway), on TWILIO_CONCURRENCY threads."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from ticketing import sms_gateway

    secret = settings.sms_http_secret.get_secret_value() if settings.sms_http_secret else None
    url = settings.sms_http_url
    if not (url and secret):
        error = "SMS HTTP gateway is not configured: sms_http_url and sms_http_secret are required"
        _finish_many(
            engine, [(r.id, {"status": "failed", "provider": "http", "error": error}) for r in rows]
        )
        log.error("sms_http_misconfigured", outbox_ids=[r.id for r in rows])
        return {r.id: "failed" for r in rows}

    def one(client: httpx.Client, r: Any) -> tuple[str, dict[str, Any], Exception | None]:
        got = sms_gateway.send(
            client,
            url,
            settings.sms_http_key_id,
            secret,
            settings.sms_http_sign_name,
            r.id,
            r.to_phone,
            r.body,
        )
        if not got.ok:
            error = got.error or "sms gateway failed"
            return _failed(r.id, error, got.transient, r.attempts, GatewayError(error), "http")
        log.info("sms_sent", outbox_id=r.id, to=mask_phone(r.to_phone), provider="http")
        values = {
            "status": "sent",
            "provider": "http",
            "provider_id": got.provider_id,
            "sent_at": utcnow(),
            "error": None,
        }
        return "sent", values, None

    with (
        httpx.Client(timeout=settings.sms_http_timeout_s) as client,
        ThreadPoolExecutor(max_workers=min(TWILIO_CONCURRENCY, len(rows))) as pool,
    ):
        results = list(pool.map(lambda r: one(client, r), rows))
    _finish_many(engine, [(r.id, v) for r, (_s, v, _e) in zip(rows, results, strict=True)])
    retry = [exc for (status, _v, exc) in results if status == "pending" and exc is not None]
    if retry:
        raise retry[0]  # RQ retries the job; only the rows put back to pending are claimed again
    return {r.id: status for r, (status, _v, _e) in zip(rows, results, strict=True)}


def _http_client() -> Any:  # a TwilioHttpClient or None (twilio ships no type information)
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
