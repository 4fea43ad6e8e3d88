"""The web process's health, checked by a thread of its own; /healthz answers its latest result.

Why: a probe that checked the database and Redis itself needed a worker thread, several GIL
hand-overs and Redis round trips (the PBX and AGI status were even read on the event loop), so
under a burst of 200 writes it queued behind them (bench/concurrency.py: /healthz p99 0.4-1 s).
Now `HealthMonitor` checks every CHECK_INTERVAL_S and /healthz answers from memory on the event
loop: no thread, no I/O, nothing to wait behind.

It still tells the truth: a result is at most CHECK_INTERVAL_S old plus the check's own time, and
one older than STALE_AFTER_S means the monitor is stuck in a check (a hung database or Redis):
that answers 503, naming the check that has not come back, exactly as a probe that checked
itself would have timed out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Self

import structlog
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from config.database import readonly
from config.settings import Settings
from config.upkeep import UpkeepThread

log = structlog.get_logger("agent_console.health")

CHECK_INTERVAL_S = 0.5
STALE_AFTER_S = 3.0


@dataclass(frozen=True, slots=True)
class Health:
    """One round of checks: each check "ok" or "down: <why>"; the PBX side is only reported."""

    checks: dict[str, str]
    pbx: dict[str, Any] = field(default_factory=dict)
    agi: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() when the round ended

    @property
    def ok(self) -> bool:
        return all(v == "ok" for v in self.checks.values())


def _down(e: BaseException) -> str:
    return f"down: {type(e).__name__}"


def check_database(engine: Engine) -> str:
    # read-only: on SQLite a plain connection's BEGIN would queue on the process's writer lock
    try:
        with readonly(engine).connect() as c:
            c.execute(text("SELECT 1"))
        return "ok"
    except Exception as e:
        return _down(e)


def check_redis(redis: Redis) -> str:
    try:
        redis.ping()
        return "ok"
    except Exception as e:
        return _down(e)


class HealthMonitor(UpkeepThread):
    """`HealthMonitor(engine, redis, settings).start()`: checks once at once, then every
    `interval_s`; `.current()` is what /healthz answers."""

    name = "health-monitor"

    def __init__(
        self,
        engine: Engine,
        redis: Redis,
        settings: Settings,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self.engine, self.redis, self.settings = engine, redis, settings
        self.stale_after_s = stale_after_s
        self._last = Health(checks={"database": "down: not checked yet", "redis": "unknown"})
        self._checking = "database"  # the check in progress (named when it does not come back)

    def start(self) -> Self:
        self._last = self.check()  # the first probe gets a real answer
        return super().start()

    def check(self) -> Health:
        """One round: database, Redis, then (Redis up) the PBX links and the FastAGI heartbeat."""
        self._checking = "database"
        checks = {"database": check_database(self.engine)}
        self._checking = "redis"
        checks["redis"] = check_redis(self.redis)
        pbx: dict[str, Any] = {}
        agi: dict[str, Any] = {}
        if checks["redis"] == "ok":
            from callcenter.pbx_status import agi_status, pbx_links

            try:
                pbx = pbx_links(self.redis, self.settings)
                agi = agi_status(self.redis, self.settings)
            except Exception as e:
                agi = {"status": "unknown", "detail": type(e).__name__}
        return Health(checks=checks, pbx=pbx, agi=agi, at=time.monotonic())

    def current(self) -> Health:
        """The latest round; a stale one (the monitor stuck in a check) as down, saying which."""
        last = self._last  # replaced whole by the monitor thread, never mutated
        age = time.monotonic() - last.at
        if age <= self.stale_after_s:
            return last
        checks = dict(last.checks)
        checks[self._checking] = f"down: no answer for {age:.1f} s"
        return Health(checks=checks, pbx=last.pbx, agi=last.agi, at=last.at)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                health = self.check()
            except Exception as e:  # pragma: no cover - every check catches its own errors
                log.warning("health_check_failed", error=f"{type(e).__name__}: {e}"[:300])
                continue
            if health.ok != self._last.ok:
                log.warning("health_changed", status="ok" if health.ok else "down", **health.checks)
            self._last = health
