"""RQ entry points of the ticketing core (importable by any worker; no state shared across processes).

Each job rebuilds Settings from the snapshot the enqueuer passed (non-secret fields: which DB,
which Redis namespace, which config directory) over the worker's own environment (secrets such as
CALLCENTER_HANDOFF_SECRET), and opens and disposes its own engine: default RQ workers fork per
job, so an engine cached in the parent would never be reused anyway.
"""

from __future__ import annotations

from typing import Any

from config.database import make_engine
from config.settings import Settings
from ticketing import handoff


def _settings(snapshot: dict[str, Any] | None) -> Settings:
    return Settings(**(snapshot or {}))


def _final_attempt() -> bool:
    """True on the job's last allowed try (or outside RQ), so the failure is recorded for good."""
    from rq import get_current_job

    job = get_current_job()
    return job is None or not job.retries_left


def run_handoff(suborder_id: int, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """Deliver one sub-order to its external system; raise on failure so RQ retries."""
    settings = _settings(snapshot)
    engine = make_engine(settings.resolved_database_url)
    try:
        result = handoff.deliver(engine, settings, suborder_id, final=_final_attempt())
    finally:
        engine.dispose()
    if not result.ok:
        raise handoff.HandoffFailed(
            f"hand-off of sub-order {suborder_id} failed (attempt {result.attempt}): {result.error}"
        )
    return {"suborder_id": suborder_id, "attempt": result.attempt, "skipped": result.skipped}


def run_warning_scan(snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scheduler's §13 job: bring every open ticket's warning level up to date."""
    from config.database import session_scope
    from ticketing.warning_scan import scan_warnings as scan

    settings = _settings(snapshot)
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            return scan(s, settings).as_dict()
    finally:
        engine.dispose()


def run_policy_push(run_id: int, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """One policy push run (ticketing.policy_push.run_push): resumable, safe to repeat."""
    from ticketing.policy_push import run_push

    settings = _settings(snapshot)
    engine = make_engine(settings.resolved_database_url)
    try:
        return run_push(engine, settings, run_id).as_dict()
    finally:
        engine.dispose()


def run_assessment_month(month: str, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """A closed month's assessment computed and kept (ticketing.assessment.cache), enqueued
    after an accepted appeal or an admin's 重新计算 committed: the next view reads it."""
    from ticketing.assessment.cache import recompute

    settings = _settings(snapshot)
    engine = make_engine(settings.resolved_database_url)
    try:
        return recompute(engine, settings, month)
    finally:
        engine.dispose()


def run_assessment_warmup(snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scheduler's hourly job: every closed month not cached is computed and kept."""
    from ticketing.assessment.cache import warm_up

    settings = _settings(snapshot)
    engine = make_engine(settings.resolved_database_url)
    try:
        return {"months": warm_up(engine, settings)}
    finally:
        engine.dispose()


# A job enqueued a moment ago may still be waiting in the queue; after this long without any
# attempt it was lost (Redis down at commit, or restarted without its data).
LOST_AFTER_MINUTES = 10


def requeue_lost_work(snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scheduler's safety net: hand-offs, SMS and policy push runs queued but never done are
    queued again."""
    from datetime import timedelta

    from ticketing import notify, policy_push

    settings = _settings(snapshot)
    lost = timedelta(minutes=LOST_AFTER_MINUTES)
    engine = make_engine(settings.resolved_database_url)
    try:
        n = handoff.requeue_pending(settings, engine, older_than=lost)
        runs = policy_push.requeue_unfinished(settings, engine, older_than=lost)
    finally:
        engine.dispose()
    return {"handoffs": n, "sms": notify.flush_pending(settings, older_than=lost), "pushes": runs}
