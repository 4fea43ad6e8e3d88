"""Helpers for the process-level tests of `callcenter demo` and `callcenter up`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CLI = str(Path(sys.executable).parent / "callcenter")
SHARED = Path(__file__).resolve().parents[3] / "shared"
if not SHARED.exists():
    SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
AMI_DIR = SHARED / "fixtures" / "ami"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without any CALLCENTER_ setting of the caller's shell, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_DATA_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_for(cond: Callable[[], object], proc: subprocess.Popen, tries: int = 240) -> object:
    """Poll `cond` every 0.5 s until truthy (a bound on waiting, not a timing assertion);
    gives up early when the process under test has exited."""
    for _ in range(tries):
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            return cond()
        time.sleep(0.5)
    return None


# ----- `callcenter run` as a real process tree (tests/callcenter/test_heal.py) -----------------
ADMIN_PASSWORD = "heal-admin-pw-1"


def until(cond: Callable[[], object], bound: float, step: float = 0.2) -> float | None:
    """Seconds until `cond()` held, or None when `bound` passed first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < bound:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def events(text: str) -> list[dict]:
    """The JSON log lines of a `callcenter` process's output."""
    import contextlib
    import json

    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def processes_of(data_dir: Path) -> list[int]:
    """Every live process started for this data dir (its CALLCENTER_DATA_DIR is inherited by the
    whole tree, re-parented orphans included)."""
    marks = {f"CALLCENTER_DATA_DIR={d}".encode() for d in (data_dir, data_dir.resolve())}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marks & set(env) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


class RunService:
    """`callcenter run` (what `make run` starts) on its own data dir, port and embedded Redis."""

    def __init__(self, tmp_path: Path, port: int | None = None, name: str = "run") -> None:
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.data_dir = tmp_path / "var"
        self.log = tmp_path / f"{name}.log"
        self.env = clean_env(
            tmp_path,
            CALLCENTER_PORT=str(self.port),
            CALLCENTER_ADMIN_PASSWORD=ADMIN_PASSWORD,
            CALLCENTER_LOG_LEVEL="INFO",
        )
        self.proc: subprocess.Popen | None = None
        self.first_start = 0.0  # seconds from start to healthy (set by the test)
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> RunService:
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                [CLI, "run"], env=self.env, stdout=fh, stderr=subprocess.STDOUT, cwd=self.tmp_path
            )
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self) -> list[dict]:
        return events(self.text())

    def child_pid(self, child: str) -> int | None:
        """The pid of the latest start of `child` (web, worker, scheduler, redis)."""
        pids = [
            e["pid"]
            for e in self.events()
            if e.get("event") == "child_started" and e.get("child") == child
        ]
        return pids[-1] if pids else None

    def healthy(self) -> bool:
        import httpx

        try:
            r = httpx.get(f"{self.base}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json().get("checks", {}).get("redis") == "ok"

    def all_children_up(self) -> bool:
        """Web, worker and scheduler (and the embedded Redis, when supervised) are alive."""
        pids = [self.child_pid(c) for c in ("worker", "scheduler", "web")]
        if self.child_pid("redis") is not None:
            pids.append(self.child_pid("redis"))
        return all(p is not None and pid_alive(p) for p in pids)

    def token(self) -> str:
        import httpx

        r = httpx.post(
            f"{self.base}/api/v1/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["access_token"]

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(15)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_tree()
            raise

    def kill_tree(self) -> None:
        """Last resort after a failed test: nothing of this data dir may outlive it."""
        import contextlib
        import signal

        for pid in processes_of(self.data_dir.resolve()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def ticket_body(i: int, tag: str = "heal") -> dict:
    """A hotline ticket for POST /api/v1/tickets (a distinct call id each)."""
    return {
        "channel": "hotline",
        "content": f"故障测试工单 {i}：路灯不亮，请尽快处理",
        "submitter_phone": f"139{i:08d}",
        "channel_data": {"call_id": f"{tag}-{os.getpid()}-{i}"},
        "send_notice": False,
    }


class TicketLoad:
    """A bounded ticket-creation load (HTTP POSTs with a token) in a thread: at most `rate` per
    second and `limit` in all; keeps the number of every ticket the server acknowledged (201)."""

    def __init__(self, base: str, token: str, rate: float = 8.0, limit: int = 2000) -> None:
        import threading

        self.base, self.token, self.rate, self.limit = base, token, rate, limit
        self.acknowledged: list[str] = []
        self.failures = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(headers=headers, timeout=10) as client:
            for i in range(self.limit):
                if self.stop_event.is_set():
                    return
                try:
                    r = client.post(f"{self.base}/api/v1/tickets", json=ticket_body(i))
                    if r.status_code == 201:
                        self.acknowledged.append(r.json()["number"])
                    else:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1
                self.stop_event.wait(1 / self.rate)

    def __enter__(self) -> TicketLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(30)

    def acked_since(self, n: int) -> bool:
        return len(self.acknowledged) > n
