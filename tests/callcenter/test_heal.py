"""`callcenter run` (= `make run`) heals itself: real process trees on their own data dir, port and
embedded Redis, with a bounded ticket-creation load running throughout.

- kill -9 of each child (web, worker, scheduler, embedded Redis), Redis stopped (SIGTERM) and the
  data dir made read-only for 10 s: the service is healthy again by itself (bounded wait: 30 s)
  and every ticket the server acknowledged is in the database;
- SIGTERM at random early moments always stops it, and nothing of the tree survives; nor after a
  SIGKILL of the supervisor;
- a second instance on the same data dir is refused, says what runs (Chinese and English), and
  the first is unharmed; a quick restart waits for the old instance to finish stopping.

Heal times are printed (run with -s to see them), never asserted beyond the 30 s bound (or twice
the first start, on a machine loaded so that one start takes longer than that).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cc_helpers import RunService, TicketLoad, pid_alive, processes_of, ticket_body, until

HEAL_BOUND = 30.0  # the bound on healing by itself, on an unloaded machine
# a restarted web is only as quick as a web start: on a loaded machine (2 cores shared by parallel
# test runs) one start can take 30 s, so the bound is at least twice this run's first start
CHILDREN = ("redis", "worker", "scheduler", "web")


def _stored_numbers(data_dir: Path) -> set[str]:
    con = sqlite3.connect(f"file:{data_dir / 'callcenter.db'}?mode=ro", uri=True, timeout=30)
    try:
        return {row[0] for row in con.execute("SELECT number FROM ticket")}
    finally:
        con.close()


def _rq_workers(svc: RunService) -> int:
    """rq workers registered in the embedded Redis (a worker that quit deregisters)."""
    import redis
    from rq import Worker

    conn = _redis(svc)
    try:
        return len(Worker.all(connection=conn))
    except (redis.RedisError, OSError):
        return 0
    finally:
        conn.close()


def _redis(svc: RunService):
    import redis

    sock = next(e["url"] for e in svc.events() if e.get("event") == "embedded_redis_started")
    return redis.Redis.from_url(sock, socket_timeout=2, socket_connect_timeout=2)


def _redis_refuses_writes(svc: RunService) -> bool:
    import redis

    conn = _redis(svc)
    try:
        if conn.info("persistence").get("rdb_bgsave_in_progress") == 0:
            with contextlib.suppress(redis.ResponseError):
                conn.bgsave()
        conn.set("heal:probe", "1")
        return False
    except redis.ResponseError as e:
        return "MISCONF" in str(e)
    except (redis.RedisError, OSError):
        return False
    finally:
        conn.close()


def _drop_redis_clients(svc: RunService) -> None:
    conn = _redis(svc)
    try:
        conn.client_kill_filter(_type="normal", skipme=True)
    finally:
        conn.close()


def _redis_takes_writes(svc: RunService) -> bool:
    import redis

    conn = _redis(svc)
    try:
        return bool(conn.set("heal:probe", "1"))
    except (redis.RedisError, OSError):
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def _read_only(path: Path):
    """Nothing can be created, renamed or removed in the folder, as on a read-only disk: root
    ignores permission bits, so the folder is made immutable (chattr +i), which binds root too,
    through any path or working directory (a read-only bind mount would not bind a process whose
    working directory is inside, as redis-server's is)."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _can_make_immutable(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    return ok


@pytest.fixture
def service(tmp_path):
    svc = RunService(tmp_path).start()
    try:
        took = until(lambda: svc.healthy() and svc.all_children_up(), 120)
        assert took is not None, svc.text()[-4000:]
        svc.first_start = took
        yield svc
    finally:
        try:
            code = svc.stop()
        finally:
            leftover = processes_of(svc.data_dir)
            svc.kill_tree()
        assert code == 0, svc.text()[-4000:]
        assert leftover == [], f"processes left after stop: {leftover}"


FAULTS = ["kill-web", "kill-worker", "kill-scheduler", "kill-redis", "stop-redis", "read-only"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.timeout(240)
def test_service_heals_itself_and_loses_no_acknowledged_ticket(fault, service, tmp_path):
    svc = service
    if fault == "read-only" and not _can_make_immutable(tmp_path):
        pytest.skip("cannot chattr +i here (needs CAP_LINUX_IMMUTABLE and ext2/3/4-like fs)")
    with TicketLoad(svc.base, svc.token()) as load:
        assert until(lambda: load.acked_since(5), 30), "no ticket created before the fault"
        victim = fault.split("-", 1)[1]
        old_pid = svc.child_pid(victim)
        if fault != "read-only":
            assert old_pid is not None, f"no supervised {victim} child"
        if fault == "read-only":
            with _read_only(svc.data_dir):
                t0 = time.monotonic()
                # a background save now fails as one would on a read-only disk: Redis then
                # refuses writes (MISCONF); checked, so the fault is real
                misconf = until(lambda: _redis_refuses_writes(svc), 8, 0.5)
                # every client reconnects now, so each meets MISCONF inside the window (an idle
                # rq worker would otherwise touch Redis only every 45 s: a game of chance)
                _drop_redis_clients(svc)
                time.sleep(max(0.0, 10 - (time.monotonic() - t0)))
            assert misconf is not None, "Redis kept taking writes on a read-only data dir"
        else:
            os.kill(old_pid, signal.SIGKILL if fault.startswith("kill") else signal.SIGTERM)
        acked_at_fault = len(load.acknowledged)

        def healed() -> bool:
            assert svc.proc.poll() is None, f"{fault}: the service stopped\n{svc.text()[-4000:]}"
            if fault != "read-only" and svc.child_pid(victim) == old_pid:
                return False  # not restarted yet
            return (
                _redis_takes_writes(svc)
                and svc.healthy()
                and svc.all_children_up()
                and _rq_workers(svc) >= 1
                and len(load.acknowledged) > acked_at_fault + 2  # taking tickets again
            )

        bound = max(HEAL_BOUND, 2 * svc.first_start)
        took = until(healed, bound)
        assert svc.proc.poll() is None, svc.text()[-4000:]
        state = {
            "restarted": fault == "read-only" or svc.child_pid(victim) != old_pid,
            "healthz": svc.healthy(),
            "children": svc.all_children_up(),
            "rq_workers": _rq_workers(svc),
            "acked_after": len(load.acknowledged) - acked_at_fault,
        }
        assert took is not None, (
            f"{fault}: not healthy after {bound:.0f} s: {state}\n" + (svc.text()[-4000:])
        )
        print(
            f"\nHEAL {fault}: healthy again {took:.1f} s after the fault "
            f"(first start took {svc.first_start:.1f} s)",
            flush=True,
        )
    acked = set(load.acknowledged)
    assert len(acked) == len(load.acknowledged)  # every number once
    missing = acked - _stored_numbers(svc.data_dir)
    assert not missing, f"{len(missing)} acknowledged tickets lost: {sorted(missing)[:10]}"
    print(f"HEAL {fault}: {len(acked)} acknowledged, 0 lost, {load.failures} refused", flush=True)
    if fault != "read-only":
        restarted = [
            e
            for e in svc.events()
            if e.get("event") == "child_restarted" and e.get("child") == victim
        ]
        assert restarted, svc.text()[-3000:]


@pytest.mark.timeout(300)
def test_sigterm_at_random_early_moments_always_stops_with_no_orphan(tmp_path):
    seed = int(os.environ.get("HEAL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    for i in range(6):
        run_dir = tmp_path / f"try{i}"
        run_dir.mkdir()
        svc = RunService(run_dir).start()
        delay = rng.uniform(0.0, 3.0)
        time.sleep(delay)
        try:
            svc.proc.send_signal(signal.SIGTERM)
            try:
                code = svc.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                code = None
            time.sleep(0.3)  # a child killed by PDEATHSIG is reaped by init
            leftover = processes_of(svc.data_dir)
        finally:
            svc.kill_tree()
        where = f"seed {seed}, try {i}, SIGTERM after {delay:.2f} s\n{svc.text()[-3000:]}"
        assert code is not None, f"still running 20 s after SIGTERM ({where})"
        assert code in (0, -signal.SIGTERM), where  # -15: before the handler was installed
        assert leftover == [], f"orphans {leftover} ({where})"


@pytest.mark.timeout(180)
def test_sigkill_of_the_supervisor_leaves_no_child(tmp_path):
    svc = RunService(tmp_path).start()
    try:
        assert until(lambda: svc.healthy() and svc.all_children_up(), 120), svc.text()[-4000:]
        tree = processes_of(svc.data_dir)
        assert len(tree) >= 5, tree  # run, redis, worker (+ its rq scheduler), scheduler, web
        svc.proc.kill()
        svc.proc.wait()
        took = until(lambda: not processes_of(svc.data_dir), 10, 0.05)
        assert took is not None, f"orphans after SIGKILL: {processes_of(svc.data_dir)}"
        print(f"\nSIGKILL of run: whole tree gone after {took:.2f} s", flush=True)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{svc.base}/healthz", timeout=2)
    finally:
        svc.kill_tree()


@pytest.mark.timeout(240)
def test_second_instance_is_refused_and_the_first_unharmed(service, tmp_path):
    first = service
    redis_pid = first.child_pid("redis")
    token = first.token()
    second = RunService(tmp_path, name="second")  # same data dir, another port
    second.start()
    try:
        code = second.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        second.proc.send_signal(signal.SIGTERM)
        second.proc.wait(30)
        code = None
    out = second.text()
    assert code == 3, out[-3000:]
    assert (
        "已被另一个正在运行的 callcenter 使用" in out and "is in use by a running callcenter" in out
    )
    assert f"pid {first.proc.pid}" in out and f"端口 {first.port}" in out, out
    # nothing of the second one started; the first keeps its Redis and takes tickets
    assert not any(e.get("event") == "child_started" for e in second.events()), out
    time.sleep(3)
    assert first.proc.poll() is None and first.child_pid("redis") == redis_pid
    assert pid_alive(redis_pid) and first.healthy() and first.all_children_up()
    r = httpx.post(
        f"{first.base}/api/v1/tickets",
        headers={"Authorization": f"Bearer {token}"},
        json=ticket_body(1, "after-second"),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    assert not any(e.get("event") == "child_exited" for e in first.events()), first.text()[-3000:]


@pytest.mark.timeout(240)
def test_quick_restart_waits_for_the_stopping_instance(tmp_path):
    first = RunService(tmp_path, name="first").start()
    second = RunService(tmp_path, port=first.port, name="second")  # what a restart does
    try:
        assert until(lambda: first.healthy() and first.all_children_up(), 120), first.text()
        first.proc.send_signal(signal.SIGTERM)
        second.start()  # at once, while the first is still stopping
        assert first.proc.wait(timeout=60) == 0, first.text()[-3000:]
        assert until(lambda: second.healthy() and second.all_children_up(), 120), second.text()[
            -4000:
        ]
        ev = [e.get("event") for e in first.events()]
        assert "stopped" in ev and "child_exited" not in ev, first.text()[-3000:]
        # the second started its own Redis after the first's had stopped
        assert second.child_pid("redis") != first.child_pid("redis")
        assert second.stop() == 0, second.text()[-3000:]
    finally:
        first.kill_tree()
        second.kill_tree()
    assert processes_of(first.data_dir) == []
