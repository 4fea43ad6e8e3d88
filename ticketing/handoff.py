"""§12 hand-off: POST a sub-order to an external system, and accept its status callbacks.

One generic HTTP adapter, configured by data, not code per system:
- a department's `handoff_url` (departments.yaml → Department row; the row wins, the file is the
  fallback) receives its sub-orders;
- government-service matters (category "government") go instead to the prefecture's unified
  platform (咸宁市统一综合受理平台): set `government_platform: CODE` at the top level of
  departments.yaml, naming a department entry whose handoff_url is the platform's endpoint. The
  payload still names the responsible department, so the platform knows whose matter it is.

Delivery runs as an RQ job on the "handoff" queue (`ticketing.jobs.run_handoff`), enqueued only
after the dispatching transaction commits, retried with rq.Retry at growing intervals. Every
attempt is a HandoffAttempt row. The HTTP call happens outside any database transaction (SQLite
holds its write lock for the whole transaction). Bodies are JSON, signed with HMAC-SHA256 over
"<timestamp>." + the raw body: headers `X-DXE-Timestamp: <unix seconds>` and
`X-DXE-Signature: sha256=<hex>`, with the secret of the receiving system (`system_secret`: every
external system its own, so one system cannot sign for another).

Callbacks carry the same two headers over their raw body (ticketing.handoff_callback, which
binds each to the hand-off it answers, checks the timestamp window and maps them onto
ticketing.dispatch's sub-order actions: dispatch schedules hand-offs through this module, so this
module does not import dispatch).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import redis
import structlog
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.after_commit import after_commit
from config.database import session_scope
from config.loader import ConfigError, load_yaml
from config.queues import get_queue
from config.secret_key import same_secret
from config.settings import Settings
from ticketing import events
from ticketing.models import (
    Category,
    Department,
    HandoffAttempt,
    SubOrder,
    SubOrderStatus,
    Ticket,
    utcnow,
)
from ticketing.sealed import unseal
from ticketing.sla import to_local

log = structlog.get_logger("ticketing.handoff")

SS = SubOrderStatus
CALLBACK_PATH = "/api/v1/handoff/callback"  # served by agent_console; named in every payload
SIGNATURE_HEADER = "X-DXE-Signature"
TIMESTAMP_HEADER = "X-DXE-Timestamp"
DEFAULT_RETRY_INTERVALS = (10, 30, 120, 600, 1800)  # seconds: 5 retries over ~43 minutes
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_INFO_PENDING = "ticketing.handoff.pending"
# External status words → our sub-order action (a few synonyms real systems use).
STATUS_MAP = {
    "accepted": "accepted",
    "accept": "accepted",
    "受理": "accepted",
    "已受理": "accepted",
    "签收": "accepted",
    "已签收": "accepted",
    "replied": "replied",
    "completed": "replied",
    "done": "replied",
    "办结": "replied",
    "已办结": "replied",
    "已回复": "replied",
    "returned": "returned",
    "rejected": "returned",
    "退回": "returned",
    "已退回": "returned",
}


class HandoffFailed(RuntimeError):
    """Raised by the job after a failed attempt so that RQ schedules the next retry."""


# ---------------------------------------------------------------- configuration


def handoff_secret(settings: Settings) -> bytes | None:
    """The shared HMAC secret: a Settings field when one exists, else CALLCENTER_HANDOFF_SECRET."""
    value: Any = getattr(settings, "handoff_secret", None)
    if value is not None and hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    value = value or os.environ.get("CALLCENTER_HANDOFF_SECRET")
    return value.encode("utf-8") if value else None


def retry_intervals() -> list[int]:
    """Seconds between attempts; CALLCENTER_HANDOFF_RETRY_INTERVALS="10,30,120" overrides."""
    raw = os.environ.get("CALLCENTER_HANDOFF_RETRY_INTERVALS")
    if not raw:
        return list(DEFAULT_RETRY_INTERVALS)
    try:
        values = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"CALLCENTER_HANDOFF_RETRY_INTERVALS: not integers: {raw!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"CALLCENTER_HANDOFF_RETRY_INTERVALS: need >= 0 seconds: {raw!r}")
    return values


def stored_secret(session: Session, settings: Settings, system: str) -> str | None:
    """The secret the administrator entered for this system (the department row's, decrypted:
    ticketing.sealed), if any."""
    stored = session.exec(
        select(Department.handoff_secret).where(Department.code == system)
    ).first()
    return unseal(settings, stored)


def system_secret(settings: Settings, system: str, stored: str | None = None) -> bytes | None:
    """The HMAC secret shared with one external system (named by the department code whose
    endpoint it is): `stored` (the administrator's, see stored_secret), else
    settings.handoff_secrets[system], else the environment variable its
    departments.yaml entry names in `handoff_secret_env`, else derived from the deployment's
    handoff_secret as HMAC-SHA256(handoff_secret, "dxe-handoff-system:" + system) in hex — give
    each system its own value (print it with `python -c "from config.settings import Settings;
    from ticketing.handoff import system_secret; print(system_secret(Settings(), 'XNPT').decode())"`).
    None when nothing is configured."""
    if stored:
        return stored.encode("utf-8")
    explicit: Any = (getattr(settings, "handoff_secrets", None) or {}).get(system)
    if explicit is not None and hasattr(explicit, "get_secret_value"):
        explicit = explicit.get_secret_value()
    if explicit:
        return str(explicit).encode("utf-8")
    env_name = _yaml_entry(settings, system).get("handoff_secret_env")
    if env_name and os.environ.get(str(env_name)):
        return os.environ[str(env_name)].encode("utf-8")
    master = handoff_secret(settings)
    if master is None:
        return None
    return (
        hmac.new(master, b"dxe-handoff-system:" + system.encode(), hashlib.sha256)
        .hexdigest()
        .encode()
    )


def signing_input(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode("utf-8") + b"." + body


def sign(secret: bytes, body: bytes, timestamp: str | None = None) -> str:
    """sha256=<hex> over the body, or over "<timestamp>." + body when a timestamp is given (hand-offs
    and callbacks always give one)."""
    data = body if timestamp is None else signing_input(timestamp, body)
    return "sha256=" + hmac.new(secret, data, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str | None, timestamp: str | None = None) -> bool:
    return same_secret(signature.strip() if signature else None, sign(secret, body, timestamp))


def _yaml_departments(settings: Settings) -> dict[str, Any]:
    return load_yaml(settings, "departments.yaml")


def government_platform(settings: Settings) -> str | None:
    code = str(_yaml_departments(settings).get("government_platform") or "").strip()
    return code or None


def _yaml_entry(settings: Settings, code: str) -> dict[str, Any]:
    for entry in _yaml_departments(settings).get("departments") or []:
        if isinstance(entry, dict) and str(entry.get("code")) == code:
            return entry
    return {}


def _yaml_url(settings: Settings, code: str) -> str | None:
    return _yaml_entry(settings, code).get("handoff_url") or None


@dataclass(frozen=True)
class Target:
    url: str
    via: str  # the department code whose endpoint is used (the platform's for government matters)


def target_for(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    dept: Department,
    *,
    lookup: Callable[[Session, list[str]], dict[str, Department]] | None = None,
) -> Target | None:
    """Where this department's sub-order of this ticket is handed off, or None (inbox only).
    `lookup` (codes → rows) may serve the platform's row from a cache (intake's auto-dispatch)."""
    if ticket.category == Category.government:
        platform = government_platform(settings)
        if platform:
            if lookup is not None:
                p = lookup(session, [platform]).get(platform)
            else:
                p = session.exec(select(Department).where(Department.code == platform)).first()
            url = (p.handoff_url if p is not None else None) or _yaml_url(settings, platform)
            if url and (p is None or p.active):
                return Target(url, platform)
            # Named but not connected (no URL yet, as in the sample config): the department's own
            # endpoint or inbox serves instead. Debug, not warning: it is the same for every ticket.
            log.debug("government_platform_unusable", platform=platform)
    url = dept.handoff_url or _yaml_url(settings, dept.code)
    return Target(url, dept.code) if url else None


# ---------------------------------------------------------------- enqueue (after commit)


def schedule(
    session: Session, settings: Settings, ticket: Ticket, so: SubOrder, dept: Department
) -> bool:
    """Mark the sub-order for hand-off and enqueue delivery once the caller commits."""
    if target_for(session, settings, ticket, dept) is None:
        return False
    so.handoff_status = "queued"
    session.add(so)
    enqueue_after_commit(session, settings, [so.id])  # type: ignore[list-item]  # flushed: id set
    return True


def enqueue_after_commit(session: Session, settings: Settings, suborder_ids: list[int]) -> None:
    """Deliver these sub-orders (already marked "queued") once the session's transaction commits;
    dropped on rollback."""
    after_commit(session, _INFO_PENDING, ((settings, i) for i in suborder_ids), _enqueue_all)


def _enqueue_all(items: list[tuple[Settings, int]]) -> None:
    for settings, suborder_id in items:
        try:
            enqueue(settings, suborder_id)
        except Exception:  # committed already; the row stays "queued" for requeue_pending
            log.exception("handoff_enqueue_failed", suborder_id=suborder_id)


def _snapshot(settings: Settings) -> dict[str, Any]:
    return settings.job_snapshot("public_base_url")  # no secrets travel through Redis


def enqueue(settings: Settings, suborder_id: int, *, conn: redis.Redis | None = None) -> Any:
    """One delivery job with retries; returns the rq Job."""
    from rq import Retry

    intervals = retry_intervals()
    queue = get_queue(settings, "handoff", conn=conn)
    return queue.enqueue_call(
        "ticketing.jobs.run_handoff",
        args=(suborder_id, _snapshot(settings)),
        retry=Retry(max=len(intervals), interval=intervals),
        timeout=120,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        # the namespace in the id keeps jobs of separate deployments/test runs apart
        job_id=f"{settings.redis_namespace}-handoff-{suborder_id}-{uuid.uuid4().hex[:8]}",
        description=f"hand-off sub-order {suborder_id}",
    )


def requeue_pending(
    settings: Settings,
    engine: Engine,
    *,
    limit: int = 500,
    older_than: timedelta | None = None,
) -> int:
    """Re-enqueue sub-orders left "queued" with no attempt yet (Redis was down at commit).
    At start-up every such row; from the scheduler only rows dispatched `older_than` ago, since a
    younger one may simply be waiting in the queue. A duplicate delivery is harmless anyway
    (receivers key on suborder_id, and our callbacks are idempotent)."""
    q = (
        select(SubOrder.id)
        .where(SubOrder.handoff_status == "queued")
        .where(~col(SubOrder.id).in_(select(HandoffAttempt.suborder_id)))
    )
    if older_than is not None:
        q = q.where(SubOrder.dispatched_at <= utcnow() - older_than)
    with session_scope(engine, read_only=True) as s:
        ids = [i for i in s.exec(q.order_by(col(SubOrder.id)).limit(limit)) if i is not None]
    for sid in ids:
        enqueue(settings, sid)
    return len(ids)


# ---------------------------------------------------------------- delivery


def build_payload(settings: Settings, ticket: Ticket, so: SubOrder, via: str) -> dict[str, Any]:
    labels = load_yaml(settings, "categories.yaml")
    deadline = so.deadline_at or ticket.deadline_at
    return {
        "ticket_number": ticket.number,
        "suborder_id": so.id,
        "round": so.round,
        "department": so.department_code,
        "via": via,
        "category": ticket.category,
        "category_label": (labels.get("categories") or {}).get(ticket.category),
        "urgency": ticket.urgency,
        "urgency_label": (labels.get("urgencies") or {}).get(ticket.urgency),
        "title": ticket.title,
        "content": ticket.content,
        "instructions": so.instructions,
        "deadline": to_local(settings, deadline).isoformat() if deadline else None,
        "callback_url": settings.public_base_url.rstrip("/") + CALLBACK_PATH,
    }


@dataclass
class AttemptResult:
    ok: bool
    attempt: int
    status_code: int | None = None
    error: str | None = None
    skipped: bool = False


def deliver(
    engine: Engine, settings: Settings, suborder_id: int, *, final: bool = True
) -> AttemptResult:
    """One attempt: read (short read transaction), POST (no transaction), record (write)."""
    with session_scope(engine, read_only=True) as s:
        so = s.get(SubOrder, suborder_id)
        if so is None:
            log.warning("handoff_suborder_missing", suborder_id=suborder_id)
            return AttemptResult(ok=True, attempt=0, skipped=True, error="sub-order not found")
        ticket = s.get_one(Ticket, so.ticket_id)  # a sub-order's ticket (foreign key)
        dept = s.exec(select(Department).where(Department.code == so.department_code)).one()
        target = target_for(s, settings, ticket, dept)
        done = so.status in (SS.replied, SS.returned) or so.handoff_status == "sent"
        n = s.exec(
            select(func.count())
            .select_from(HandoffAttempt)
            .where(HandoffAttempt.suborder_id == suborder_id)
        ).one()
        payload = build_payload(settings, ticket, so, target.via) if target else None
        own_secret = stored_secret(s, settings, target.via) if target else None
        ticket_id = ticket.id
    if target is None or done:
        # settled meanwhile (handled in the inbox, a duplicate job, or the URL was removed from
        # config): nothing to send; don't leave it "queued" for requeue_pending to find again
        if target is None:
            with session_scope(engine) as s:
                s.execute(
                    update(SubOrder)
                    .where(
                        col(SubOrder.id) == suborder_id, col(SubOrder.handoff_status) == "queued"
                    )
                    .values(handoff_status=None)
                )
        return AttemptResult(ok=True, attempt=int(n), skipped=True)

    attempt = int(n) + 1
    secret = system_secret(settings, target.via, own_secret)
    status_code: int | None = None
    error: str | None = None
    external_ref: str | None = None
    if secret is None:
        error = (
            f"no hand-off secret for {target.via} (CALLCENTER_HANDOFF_SECRETS__{target.via} or "
            "CALLCENTER_HANDOFF_SECRET); refusing to send unsigned hand-offs"
        )
    else:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(secret, body, ts),
            "X-DXE-Delivery": f"{suborder_id}-{attempt}",
            "User-Agent": "dxe-callcenter-handoff/1",
        }
        try:
            with httpx.Client(timeout=TIMEOUT) as client:
                resp = client.post(target.url, content=body, headers=headers)
            status_code = resp.status_code
            if resp.is_success:
                external_ref = _external_ref(resp)
            else:
                error = f"HTTP {resp.status_code}: {resp.text[:200]}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"[:1000]
    ok = error is None

    with session_scope(engine) as s:
        s.add(
            HandoffAttempt(
                suborder_id=suborder_id,
                url=target.url[:500],
                attempt=attempt,
                status_code=status_code,
                ok=ok,
                error=error[:1000] if error else None,
                at=utcnow(),
            )
        )
        so = s.get_one(SubOrder, suborder_id)  # read above; sub-orders are never deleted
        if ok:
            so.handoff_status = "sent"
            if external_ref and not so.external_ref:
                so.external_ref = external_ref
            events.record(
                s,
                ticket_id,
                "system",
                "handoff_sent",
                suborder_id=suborder_id,
                via=target.via,
                attempt=attempt,
                status_code=status_code,
                external_ref=external_ref,
            )
        elif final:
            so.handoff_status = "failed"
            events.record(
                s,
                ticket_id,
                "system",
                "handoff_failed",
                suborder_id=suborder_id,
                via=target.via,
                attempts=attempt,
                error=error,
            )
        s.add(so)
    log.info(
        "handoff_attempt",
        suborder_id=suborder_id,
        attempt=attempt,
        ok=ok,
        status_code=status_code,
        final=final,
    )
    return AttemptResult(ok=ok, attempt=attempt, status_code=status_code, error=error)


def _external_ref(resp: httpx.Response) -> str | None:
    try:
        data = resp.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    ref = data.get("external_ref", data.get("id"))
    if isinstance(ref, str | int) and not isinstance(ref, bool) and str(ref):
        return str(ref)[:100]
    return None
