"""Each PBX link and the FastAGI server as the web app reports them (/healthz, /metrics).

The bridge and the AGI server run in other processes; they leave their state in Redis (the
bridge's live meta hash, field `ops`; the AGI server's heartbeat hash). Reading it here keeps the
web's own liveness independent of the PBX: a PBX down is "degraded", never a failed probe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from config.settings import Settings

AGI_STALE_S = 20.0


def _iso(ts: Any) -> str | None:
    try:
        return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return None


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def pbx_ops(redis: Any, settings: Settings) -> dict[str, dict[str, Any] | None]:
    """server name → the bridge's last `ops` snapshot (None: no bridge has reported)."""
    out: dict[str, dict[str, Any] | None] = {}
    for srv in settings.asterisk:
        raw = redis.hget(f"{settings.redis_namespace}:live:{srv.name}:meta", "ops")
        try:
            out[srv.name] = json.loads(raw) if raw is not None else None
        except ValueError:
            out[srv.name] = None
    return out


def pbx_links(redis: Any, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per PBX: status ok | degraded | unknown, since when, and why."""
    out: dict[str, dict[str, Any]] = {}
    for name, ops in pbx_ops(redis, settings).items():
        if ops is None:
            out[name] = {"status": "unknown", "detail": "no bridge has reported this PBX"}
        elif ops.get("connected"):
            out[name] = {"status": "ok", "since": _iso(ops.get("connected_since"))}
        else:
            since = _iso(ops.get("disconnected_since"))
            out[name] = {
                "status": "degraded",
                "since": since,
                "detail": f"AMI disconnected since {since}" if since else "AMI not connected",
            }
    return out


def agi_status(redis: Any, settings: Settings, now: float | None = None) -> dict[str, Any]:
    raw = redis.hgetall(f"{settings.redis_namespace}:agi:status")
    if not raw:
        return {"status": "degraded", "detail": "no FastAGI server heartbeat"}
    d = {_s(k): _s(v) for k, v in raw.items()}
    now = now if now is not None else time.time()
    updated = float(d.get("updated", 0) or 0)
    if now - updated > AGI_STALE_S:
        return {"status": "degraded", "since": _iso(updated), "detail": "heartbeat stale"}
    return {
        "status": "ok",
        "since": _iso(d.get("since")),
        "listening": d.get("listening", ""),
        "sessions": int(float(d.get("sessions", 0) or 0)),
        "errors": int(float(d.get("errors", 0) or 0)),
    }


class PbxCollector(Collector):
    """Per-PBX gauges and counters, read from Redis at scrape time."""

    def __init__(self, redis_getter: Callable[[], Any], settings_getter: Callable[[], Any]):
        self._redis = redis_getter
        self._settings = settings_getter

    def collect(self) -> Iterator[Any]:
        connected = GaugeMetricFamily(
            "callcenter_pbx_ami_connected", "AMI link up (1) or down (0)", labels=["pbx"]
        )
        in_progress = GaugeMetricFamily(
            "callcenter_pbx_calls_in_progress", "Calls the bridge holds", labels=["pbx"]
        )
        reconnects = CounterMetricFamily(
            "callcenter_pbx_ami_reconnects",
            "AMI reconnects since the bridge started",
            labels=["pbx"],
        )
        fallbacks = CounterMetricFamily(
            "callcenter_pbx_ivr_fallbacks",
            "Calls the dialplan sent past an unreachable FastAGI server",
            labels=["pbx"],
        )
        stored = CounterMetricFamily(
            "callcenter_pbx_calls_stored",
            "Finished calls stored (call record + ticket) by outcome",
            labels=["pbx", "outcome"],
        )
        reconcile = CounterMetricFamily(
            "callcenter_pbx_cdr_reconcile",
            "CDR reconcile: calls stored / already known / failed",
            labels=["pbx", "result"],
        )
        agi_sessions = CounterMetricFamily("callcenter_agi_sessions", "FastAGI sessions served")
        agi_errors = CounterMetricFamily("callcenter_agi_errors", "FastAGI sessions that failed")
        try:
            redis, settings = self._redis(), self._settings()
            ops_all = pbx_ops(redis, settings) if redis is not None else {}
            agi = agi_status(redis, settings) if redis is not None else {}
        except Exception:  # a scrape must not fail because Redis blinked
            ops_all, agi = {}, {}
        for name, ops in ops_all.items():
            ops = ops or {}
            connected.add_metric([name], 1 if ops.get("connected") else 0)
            in_progress.add_metric([name], ops.get("calls_in_progress", 0))
            reconnects.add_metric([name], ops.get("reconnects", 0))
            fallbacks.add_metric([name], ops.get("ivr_fallbacks", 0))
            for outcome, n in sorted((ops.get("outcomes") or {}).items()):
                stored.add_metric([name, outcome], n)
            rc = ops.get("reconcile") or {}
            for result in ("stored", "duplicates", "failed"):
                reconcile.add_metric([name, result], rc.get(result, 0))
        if agi.get("status") == "ok":
            agi_sessions.add_metric([], agi.get("sessions", 0))
            agi_errors.add_metric([], agi.get("errors", 0))
        yield from (connected, in_progress, reconnects, fallbacks, stored, reconcile)
        yield from (agi_sessions, agi_errors)
