"""`callcenter demo` as a real subprocess: the replaying AMI peer stands in for Asterisk, the real
bridge, IVR, ticketing and database run, and everything says it is a SIMULATION."""

from __future__ import annotations

import re
import signal
import subprocess

import httpx
import pytest
import redis
from cc_helpers import AMI_DIR, CLI, clean_env, free_port, pid_alive, wait_for
from sqlmodel import select

from callcenter.live import load_snapshot
from callcenter.models import CallRecord
from config.database import make_engine, session_scope
from config.settings import Settings
from recordings.models import Recording
from ticketing.models import CallbackTask, Ticket


def _demo(args: list[str], env: dict[str, str], timeout: float = 240):
    return subprocess.run(
        [CLI, "demo", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.timeout(300)
def test_demo_answered_and_abandoned(tmp_path, redis_server_url, redis_namespace):
    data = tmp_path / "demo"
    env = clean_env(
        tmp_path,
        CALLCENTER_REDIS_URL=redis_server_url,
        CALLCENTER_REDIS_NAMESPACE=redis_namespace,
    )
    args = ["--no-web", "--scenario", "answered", "--scenario", "abandoned", "--speed", "0"]
    r = _demo([*args, "--data-dir", str(data), "--fixtures", str(AMI_DIR)], env)
    out = r.stdout
    assert r.returncode == 0, (out + r.stderr)[-4000:]
    # labelled, in both languages, at the start and on every line it prints about calls
    assert "SIMULATION" in out and "模拟演示" in out
    assert "1 recording(s) on tickets" in out
    assert out.index("SIMULATION") < out.index("replaying scenario-answered")
    assert "[模拟 SIMULATION] 回放 replaying scenario-abandoned" in out
    # the FastAGI IVR answered a simulated caller pressing the captured keys (1, then 3)
    assert re.search(r"IVR 语音导航 \(scenario-answered\): keys 1 → \w+", out), out
    assert re.search(r"IVR 语音导航 \(scenario-abandoned\): keys 3 → \w+", out), out

    engine = make_engine(f"sqlite:///{data / 'callcenter.db'}")
    try:
        with session_scope(engine, read_only=True) as s:
            calls = {c.call_id: c for c in s.exec(select(CallRecord))}
            assert {c: r.disposition for c, r in calls.items()} == {
                "1795569321.0": "answered",
                "1795569356.7": "abandoned",
            }
            tickets = {t.id: t for t in s.exec(select(Ticket))}
            assert len(tickets) == 2 and all(t.channel == "hotline" for t in tickets.values())
            assert all(t.simulated for t in tickets.values())  # the demo's tickets say 模拟
            assert all(c.ticket_id in tickets for c in calls.values())
            (task,) = s.exec(select(CallbackTask)).all()
            abandoned = calls["1795569356.7"]
            assert task.reason == "abandoned" and task.call_id == "1795569356.7"
            assert task.phone == abandoned.caller_phone and task.ticket_id == abandoned.ticket_id
            assert task.status == "open"
            # the answered call's MixMonitor file from the PBX side is on its ticket
            (rec,) = s.exec(select(Recording)).all()
            answered = calls["1795569321.0"]
            assert rec.kind == "call" and rec.call_id == answered.call_id
            assert rec.ticket_id == answered.ticket_id
            # no caller's full number on the console (masked like +86138****8000)
            for c in calls.values():
                assert c.caller_phone.startswith("+86")
                assert c.caller_phone not in out and c.caller_phone[3:] not in out
    finally:
        engine.dispose()

    # the web-visible live snapshot carries the simulation flag (own "-demo" key prefix)
    r_ = redis.Redis.from_url(redis_server_url)
    try:
        snap = load_snapshot(r_, Settings(redis_namespace=f"{redis_namespace}-demo"))
    finally:
        r_.close()
    meta = snap["servers"]["simulated-pbx"]
    assert meta["simulation"] is True and "模拟" in meta["simulation_notice"]
    assert {q["name"] for q in snap["queues"]} >= {"dxe-enterprise", "dxe-complaint"}

    # a second run replays the same captures: recognised as the same calls, nothing doubled
    r2 = _demo([*args, "--data-dir", str(data), "--fixtures", str(AMI_DIR)], env)
    assert r2.returncode == 0, r2.stdout[-3000:]
    engine = make_engine(f"sqlite:///{data / 'callcenter.db'}")
    try:
        with session_scope(engine, read_only=True) as s:
            assert len(s.exec(select(CallRecord)).all()) == 2
            assert len(s.exec(select(Ticket)).all()) == 2
            assert len(s.exec(select(CallbackTask)).all()) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "no-such-call"], "unknown scenario 'no-such-call'"),
        (["--fixtures", "{tmp}/missing"], "no AMI captures found"),
        (["--speed", "-1"], "--speed must be ≥ 0"),
    ],
)
def test_demo_rejects_bad_options_before_doing_anything(tmp_path, args, message):
    data = tmp_path / "demo"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = _demo(["--no-web", "--data-dir", str(data), *args], clean_env(tmp_path), timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stdout + r.stderr
    assert not data.exists()  # nothing created, no Redis started


@pytest.mark.timeout(300)
def test_demo_with_web_serves_and_stops_cleanly(tmp_path, redis_server_url, redis_namespace):
    port = free_port()
    data = tmp_path / "demo"
    env = clean_env(
        tmp_path,
        CALLCENTER_REDIS_URL=redis_server_url,
        CALLCENTER_REDIS_NAMESPACE=redis_namespace,
        CALLCENTER_ADMIN_PASSWORD="demo-admin-pw",
    )
    log = tmp_path / "demo.log"
    args = ["--web", "--port", str(port), "--scenario", "abandoned", "--speed", "0"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [CLI, "demo", *args, "--data-dir", str(data), "--fixtures", str(AMI_DIR)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_for(healthy, proc), log.read_text()[-3000:]
        assert wait_for(lambda: "replay done" in log.read_text(), proc), log.read_text()[-3000:]
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": "demo-admin-pw"}
        )
        assert login.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    text = log.read_text()
    assert code == 0, text[-3000:]
    pids = [int(p) for p in re.findall(r"(?:worker|web)=(\d+)", text)]
    assert len(pids) == 2 and not any(pid_alive(p) for p in pids)
    assert "demo finished" in text
    # the abandoned caller's callback task is in the demo DB the web console was serving
    engine = make_engine(f"sqlite:///{data / 'callcenter.db'}")
    try:
        with session_scope(engine, read_only=True) as s:
            assert [t.reason for t in s.exec(select(CallbackTask))] == ["abandoned"]
    finally:
        engine.dispose()
