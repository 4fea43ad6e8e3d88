"""Several web processes on one port (settings.web_processes, `callcenter web --workers`):
counters summed across them on /metrics, a dead worker replaced, and no worker outliving the
service, under `callcenter run` as `make run` starts it (SQLite, embedded Redis)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from cc_helpers import RunService, pid_alive, processes_of, until

from config.settings import Settings

SQLITE = "sqlite:////tmp/x.db"
POSTGRES = "postgresql+psycopg://u@127.0.0.1:5432/db"


def test_web_processes_one_on_sqlite_one_per_core_on_postgresql(tmp_path):
    assert Settings(data_dir=tmp_path).web_processes() == 1  # embedded default: SQLite
    assert Settings(data_dir=tmp_path, database_url=SQLITE).web_processes() == 1
    assert Settings(data_dir=tmp_path, database_url=POSTGRES).web_processes() == max(
        1, min(os.cpu_count() or 1, 4)
    )
    # an explicit number wins on either
    assert Settings(data_dir=tmp_path, database_url=POSTGRES, web_workers=3).web_processes() == 3
    assert Settings(data_dir=tmp_path, web_workers=2).web_processes() == 2


def test_web_workers_setting_is_bounded(tmp_path):
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path, web_workers=-1)
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path, web_workers=65)


def test_each_web_process_has_its_own_metrics_dir_and_dead_ones_are_cleared(tmp_path):
    import subprocess

    from callcenter.run import fresh_metrics_dir

    settings = Settings(data_dir=tmp_path)
    root = tmp_path / "prometheus"
    other = subprocess.Popen(["sleep", "30"])  # another live `callcenter web` on this data dir
    try:
        (root / str(other.pid)).mkdir(parents=True)
        (root / str(other.pid) / "counter_1.db").write_bytes(b"x")
        dead = subprocess.Popen(["true"])
        dead.wait()
        (root / str(dead.pid)).mkdir()
        (root / "counter_9.db").write_bytes(b"x")  # a stray file of an older layout
        mine = fresh_metrics_dir(settings)
        assert mine == root / str(os.getpid()) and mine.is_dir() and not any(mine.iterdir())
        assert (root / str(other.pid) / "counter_1.db").exists()  # the live one's counts stay
        assert not (root / str(dead.pid)).exists()
        assert not (root / "counter_9.db").exists()
    finally:
        other.kill()
        other.wait()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid and pid_alive(int(entry.name)):
                out.append(int(entry.name))
    return out


def _workers(svc: RunService) -> list[int]:
    """The uvicorn workers: the web child's python children (not multiprocessing's tracker)."""
    web = svc.child_pid("web")
    if web is None:
        return []
    found = []
    for pid in _children(web):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            found.append(pid)
    return found


def _healthz_count(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    m = re.search(
        r'^callcenter_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$',
        text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def two_workers(tmp_path):
    svc = RunService(tmp_path)
    svc.env["CALLCENTER_WEB_WORKERS"] = "2"
    svc.start()
    try:
        ok = until(lambda: svc.healthy() and svc.all_children_up() and len(_workers(svc)) == 2, 120)
        assert ok is not None, svc.text()[-4000:]
        yield svc
    finally:
        if svc.proc is not None and svc.proc.poll() is None:
            try:
                svc.stop(timeout=60)
            finally:
                svc.kill_tree()
        else:
            svc.kill_tree()


@pytest.mark.timeout(240)
def test_two_workers_share_the_port_and_their_counters(two_workers):
    svc = two_workers
    web = svc.child_pid("web")
    # both workers serve: each request on a connection of its own, so the kernel hands them
    # to whichever worker accepts first
    before, n = _healthz_count(svc.base), 60
    for _ in range(n):
        assert httpx.get(f"{svc.base}/healthz", timeout=10).status_code == 200
    # one scrape reaches one worker, yet counts every worker's requests
    assert _healthz_count(svc.base) == before + n
    assert (Path(svc.data_dir) / "prometheus").is_dir()
    # a logged-in write works on either (one signing key, one database)
    token = svc.token()
    for _ in range(6):
        r = httpx.get(
            f"{svc.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert r.status_code == 200, r.text
    assert svc.child_pid("web") == web  # nothing restarted meanwhile


@pytest.mark.timeout(240)
def test_a_killed_worker_is_replaced_and_counters_survive(two_workers):
    svc = two_workers
    for _ in range(10):
        httpx.get(f"{svc.base}/healthz", timeout=10)
    counted = _healthz_count(svc.base)
    victim = _workers(svc)[0]
    os.kill(victim, signal.SIGKILL)
    back = until(lambda: svc.healthy() and len(w := _workers(svc)) == 2 and victim not in w, 60)
    assert back is not None, svc.text()[-4000:]
    # the dead worker's requests still count (a counter never goes back)
    assert _healthz_count(svc.base) >= counted


@pytest.mark.timeout(240)
def test_no_worker_outlives_a_sigkilled_service(two_workers):
    svc = two_workers
    workers = _workers(svc)
    assert len(workers) == 2
    svc.proc.kill()  # `callcenter run` itself: web dies with it, and the workers with web
    svc.proc.wait()
    gone = until(lambda: not processes_of(svc.data_dir), 15, 0.05)
    assert gone is not None, f"orphans after SIGKILL: {processes_of(svc.data_dir)}"
    assert not any(pid_alive(p) for p in workers)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{svc.base}/healthz", timeout=2)


@pytest.mark.timeout(240)
def test_sigterm_stops_every_worker(two_workers):
    svc = two_workers
    workers = _workers(svc)
    assert svc.stop(timeout=60) == 0
    assert not any(pid_alive(p) for p in workers)
    assert until(lambda: not processes_of(svc.data_dir), 10, 0.05) is not None, processes_of(
        svc.data_dir
    )
