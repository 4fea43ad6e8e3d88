"""§12 hand-off: a real HTTP receiver, real RQ workers on the real Redis, signed callbacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import yaml
from _loop_helpers import (
    actions,
    events,
    make_ticket,
    seed_departments,
    snapshot,
    suborders,
    ticket,
)
from pydantic import SecretStr
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.timeouts import TimerDeathPenalty
from sqlmodel import select

import ticketing.dispatch as d
from config.database import session_scope
from config.queues import get_queue
from config.settings import DEFAULTS_DIR
from ticketing import handoff, handoff_callback
from ticketing.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ticketing.models import HandoffAttempt, SubOrder, Ticket

SECRET = "test-handoff-secret-" + uuid.uuid4().hex[:6]
ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """An external department system: answers from a script, remembers every request."""

    def __init__(self, script: list[int]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    code = outer.script.pop(0) if outer.script else 200
                reply = json.dumps({"external_ref": "EXT-42"} if code < 300 else {"error": "busy"})
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver([500, 503])  # fails twice, then succeeds
    yield r
    r.close()


@pytest.fixture
def world(engine, settings, tmp_path, monkeypatch, receiver):
    """Departments with hand-off URLs from a departments.yaml in a private config_dir."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    depts = yaml.safe_load((DEFAULTS_DIR / "departments.yaml").read_text(encoding="utf-8"))
    for entry in depts["departments"]:
        if entry["code"] == "SCJG":
            entry["handoff_url"] = f"{receiver.url}/scjg"
        if entry["code"] == "SWJ":
            entry["handoff_url"] = f"{receiver.url}/swj"
        if entry["code"] == "XNPT":  # the prefecture platform, named by government_platform
            entry["handoff_url"] = f"{receiver.url}/platform"
    assert depts["government_platform"] == "XNPT"
    (cfg / "departments.yaml").write_text(yaml.safe_dump(depts, allow_unicode=True), "utf-8")
    s2 = settings.model_copy(update={"config_dir": cfg})
    monkeypatch.setenv("CALLCENTER_HANDOFF_SECRET", SECRET)
    monkeypatch.setenv("CALLCENTER_HANDOFF_RETRY_INTERVALS", "1,1")
    seed_departments(engine, s2)
    yield engine, s2
    _conn(s2).srem("rq:queues", f"rq:queue:{s2.redis_namespace}:handoff")  # RQ's global index


def _conn(settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def _queued_ids(settings) -> list[str]:
    return get_queue(settings, "handoff", conn=_conn(settings)).get_job_ids()


def _work_until_done(settings, job_ids: list[str], rounds: int = 60) -> list[JobStatus]:
    """Burst SimpleWorkers with the scheduler until every job finished or failed for good.

    Retries wait in RQ's ScheduledJobRegistry; each burst run moves the due ones back to the
    queue. Thread-based job timeouts keep pytest-timeout's SIGALRM intact."""
    conn = _conn(settings)
    queue = get_queue(settings, "handoff", conn=conn)
    statuses: list[JobStatus] = []
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for i in range(rounds):
        w = SimpleWorker([queue], connection=conn, name=f"{settings.redis_namespace}-w{i}")
        w.death_penalty_class = TimerDeathPenalty
        try:
            w.work(burst=True, with_scheduler=True, logging_level="WARNING")
        finally:  # the worker installs its own SIGINT/SIGTERM handlers; give pytest its own back
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        statuses = [Job.fetch(j, connection=conn).get_status() for j in job_ids]
        if all(s in (JobStatus.FINISHED, JobStatus.FAILED) for s in statuses):
            return statuses
        time.sleep(0.3)
    raise AssertionError(f"jobs not done after {rounds} worker runs: {statuses}")


def _attempts(engine, sid) -> list[HandoffAttempt]:
    with session_scope(engine, read_only=True) as s:
        return list(
            s.exec(
                select(HandoffAttempt)
                .where(HandoffAttempt.suborder_id == sid)
                .order_by(HandoffAttempt.attempt)
            )
        )


def _dispatch(engine, settings, codes, **kw) -> tuple[int, list[int]]:
    tid = make_ticket(engine, settings, **kw)
    with session_scope(engine) as s:
        subs = d.dispatch(
            s, settings, s.get(Ticket, tid), codes, actor="disp", instructions="请核实"
        )
    return tid, [so.id for so in subs]


# ------------------------------------------------------------------ signing


def test_sign_and_verify():
    body = b'{"a":1}'
    sig = handoff.sign(b"k", body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert handoff.verify(b"k", body, sig)
    assert not handoff.verify(b"k", body + b" ", sig)
    assert not handoff.verify(b"other", body, sig)
    assert not handoff.verify(b"k", body, None)
    assert not handoff.verify(b"k", body, "")


# ------------------------------------------------------------------ outbound


def test_handoff_fails_twice_then_succeeds_through_real_worker(world, receiver):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    assert suborders(engine, tid)[0].handoff_status == "queued"
    job_ids = _queued_ids(settings)
    assert len(job_ids) == 1

    assert _work_until_done(settings, job_ids) == [JobStatus.FINISHED]

    rows = _attempts(engine, sid)
    assert [(a.attempt, a.status_code, a.ok) for a in rows] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert rows[0].error.startswith("HTTP 500") and rows[2].error is None
    assert all(a.url == f"{receiver.url}/scjg" for a in rows)
    (so,) = suborders(engine, tid)
    assert so.handoff_status == "sent" and so.external_ref == "EXT-42"
    (ev,) = events(engine, tid, "handoff_sent")
    assert ev.detail["attempt"] == 3 and ev.suborder_id == sid

    # what the department system received: signed JSON with everything it needs
    assert len(receiver.requests) == 3
    req = receiver.requests[-1]
    assert req["path"] == "/scjg"
    # signed with SCJG's own secret over "<timestamp>." + body; the shared one does not verify
    ts = req["headers"][handoff.TIMESTAMP_HEADER]
    sig = req["headers"][handoff.SIGNATURE_HEADER]
    assert abs(int(ts) - time.time()) < 120
    assert handoff.verify(handoff.system_secret(settings, "SCJG"), req["body"], sig, ts)
    assert not handoff.verify(SECRET.encode(), req["body"], sig, ts)
    assert not handoff.verify(handoff.system_secret(settings, "SWJ"), req["body"], sig, ts)
    payload = json.loads(req["body"])
    t = ticket(engine, tid)
    assert payload["ticket_number"] == t.number and payload["suborder_id"] == sid
    assert payload["category"] == "enterprise" and payload["category_label"] == "企业服务"
    assert payload["urgency"] == "general" and payload["content"] == t.content
    assert payload["instructions"] == "请核实" and payload["department"] == "SCJG"
    assert payload["deadline"].endswith("+08:00")
    assert payload["callback_url"] == settings.public_base_url + handoff.CALLBACK_PATH


def test_handoff_gives_up_after_the_last_retry(world, receiver):
    engine, settings = world
    receiver.script[:] = [500, 500, 500, 500]
    tid, (sid,) = _dispatch(engine, settings, ["SWJ"])
    assert _work_until_done(settings, _queued_ids(settings)) == [JobStatus.FAILED]
    assert [a.ok for a in _attempts(engine, sid)] == [False, False, False]
    assert suborders(engine, tid)[0].handoff_status == "failed"
    (ev,) = events(engine, tid, "handoff_failed")
    assert ev.detail["attempts"] == 3 and "HTTP 500" in ev.detail["error"]


def test_unreachable_system_is_recorded_as_an_attempt(world):
    engine, settings = world
    with session_scope(engine) as s:
        from ticketing.models import Department

        dept = s.exec(select(Department).where(Department.code == "SCJG")).one()
        dept.handoff_url = "http://127.0.0.1:9/closed"  # discard port: nothing listens
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    result = handoff.deliver(engine, settings, sid, final=True)
    assert not result.ok and "ConnectError" in result.error
    (a,) = _attempts(engine, sid)
    assert a.status_code is None and "ConnectError" in a.error
    assert suborders(engine, tid)[0].handoff_status == "failed"


def test_government_matters_go_to_the_unified_platform(world, receiver):
    engine, settings = world
    receiver.script[:] = []
    tid, _ = _dispatch(engine, settings, ["ZWFW"], category="government")
    assert suborders(engine, tid)[0].handoff_status == "queued"  # ZWFW has no URL of its own
    assert _work_until_done(settings, _queued_ids(settings)) == [JobStatus.FINISHED]
    (req,) = receiver.requests
    assert req["path"] == "/platform"
    body = json.loads(req["body"])
    assert body["via"] == "XNPT" and body["department"] == "ZWFW"
    assert body["category_label"] == "政务服务"


def test_departments_without_handoff_url_are_inbox_only(world):
    engine, settings = world
    tid, _ = _dispatch(engine, settings, ["RSJ"])
    assert suborders(engine, tid)[0].handoff_status is None
    assert _queued_ids(settings) == []
    assert events(engine, tid, "suborder_dispatched")[0].detail["handoff"] is False


def test_rolled_back_dispatch_enqueues_nothing(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["SCJG"], actor="disp")
        with s.begin_nested():  # a SAVEPOINT commit is not the real commit
            s.get(Ticket, tid).title = "changed"
        raise RuntimeError("the request failed after dispatch")
    assert _queued_ids(settings) == []
    assert suborders(engine, tid) == []


def test_redis_down_at_commit_leaves_it_queued_for_requeue(world, receiver):
    engine, settings = world
    receiver.script[:] = []
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})  # nothing listens
    tid, (sid,) = _dispatch(engine, down, ["SCJG"])  # the commit succeeds anyway
    assert suborders(engine, tid)[0].handoff_status == "queued"
    assert _queued_ids(settings) == []
    # the scheduler's sweep leaves a young row alone: its job may just be waiting in the queue
    assert handoff.requeue_pending(settings, engine, older_than=timedelta(minutes=10)) == 0
    with session_scope(engine) as s:
        s.get(SubOrder, sid).dispatched_at -= timedelta(minutes=11)
    assert handoff.requeue_pending(settings, engine, older_than=timedelta(minutes=10)) == 1
    assert _work_until_done(settings, _queued_ids(settings)) == [JobStatus.FINISHED]
    assert suborders(engine, tid)[0].handoff_status == "sent"
    assert handoff.requeue_pending(settings, engine) == 0  # attempted: not requeued again
    assert [a.ok for a in _attempts(engine, sid)] == [True]


def test_missing_secret_refuses_to_send_unsigned(world, monkeypatch, receiver):
    engine, settings = world
    monkeypatch.delenv("CALLCENTER_HANDOFF_SECRET")
    _tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    result = handoff.deliver(engine, settings, sid, final=False)
    assert not result.ok and "CALLCENTER_HANDOFF_SECRET" in result.error and "SCJG" in result.error
    assert receiver.requests == []
    assert [a.ok for a in _attempts(engine, sid)] == [False]


def test_rq_worker_subprocess_delivers_with_env_settings(world, receiver):
    """The production shape: `rq worker` in its own process, forking per job."""
    engine, settings = world
    receiver.script[:] = []
    _tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    env = {**os.environ, "CALLCENTER_HANDOFF_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "rq"),
            "worker",
            "--burst",
            "--with-scheduler",
            "--url",
            settings.redis_url,
            "--name",
            f"{settings.redis_namespace}-sub",
            f"{settings.redis_namespace}:handoff",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert [(a.attempt, a.ok) for a in _attempts(engine, sid)] == [(1, True)]
    assert len(receiver.requests) == 1


# ------------------------------------------------------------------ callbacks


def _system(engine, settings, payload) -> str:
    """The system a sub-order was handed off to (SCJG for payloads without a usable one)."""
    sid = payload.get("suborder_id") if isinstance(payload, dict) else None
    with session_scope(engine, read_only=True) as s:
        so = s.get(SubOrder, sid) if isinstance(sid, int) else None
        return (handoff_callback._handed_off_to(s, settings, so) if so else None) or "SCJG"


def _cb(engine, settings, payload, signature="good", *, ts=None, system=None):
    body = (
        json.dumps(payload, ensure_ascii=False).encode()
        if not isinstance(payload, bytes)
        else payload
    )
    ts = str(int(time.time())) if ts is None else ts
    secret = handoff.system_secret(settings, system or _system(engine, settings, payload))
    sig = handoff.sign(secret, body, ts) if signature == "good" else signature
    with session_scope(engine) as s:
        so = handoff_callback.handle_callback(s, settings, body, sig, ts)
        return so.status


def test_callbacks_drive_the_suborder_and_are_idempotent(world):
    engine, settings = world
    tid, (a, b) = _dispatch(engine, settings, ["SCJG", "SWJ"])
    t = ticket(engine, tid)
    assert (
        _cb(engine, settings, {"suborder_id": a, "status": "accepted", "external_ref": "X1"})
        == "accepted"
    )
    n = len(actions(engine, tid))
    assert _cb(engine, settings, {"suborder_id": a, "status": "accepted"}) == "accepted"
    assert len(actions(engine, tid)) == n  # a repeat changes nothing
    assert (
        _cb(
            engine,
            settings,
            {"suborder_id": a, "status": "replied", "text": "已办结", "ticket_number": t.number},
        )
        == "replied"
    )
    assert (
        _cb(engine, settings, {"suborder_id": a, "status": "已办结", "text": "again"}) == "replied"
    )
    assert _cb(engine, settings, {"suborder_id": a, "status": "accepted"}) == "replied"  # late
    # straight from dispatched to replied: accepted on the way, both logged
    assert (
        _cb(engine, settings, {"suborder_id": b, "status": "completed", "text": "好了"})
        == "replied"
    )
    subs = suborders(engine, tid)
    assert subs[0].external_ref == "X1" and subs[0].reply == "已办结"
    assert ticket(engine, tid).status == "resolved"
    replied = events(engine, tid, "suborder_replied")
    assert [e.actor for e in replied] == ["handoff:SCJG", "handoff:SWJ"]
    assert len(events(engine, tid, "suborder_accepted")) == 2


def test_returned_callback_goes_back_to_dispatcher(world):
    engine, settings = world
    tid, (a,) = _dispatch(engine, settings, ["SCJG"])
    with pytest.raises(InvalidInput, match="reason"):
        _cb(engine, settings, {"suborder_id": a, "status": "returned"})
    assert (
        _cb(engine, settings, {"suborder_id": a, "status": "退回", "reason": "非本部门"})
        == "returned"
    )
    assert (
        _cb(engine, settings, {"suborder_id": a, "status": "returned", "reason": "x"}) == "returned"
    )
    assert ticket(engine, tid).status == "pending_dispatch"
    with pytest.raises(Conflict):
        _cb(engine, settings, {"suborder_id": a, "status": "replied", "text": "晚了"})


@pytest.mark.parametrize(
    ("payload", "signature", "exc"),
    [
        ({"status": "accepted"}, "sha256=" + "0" * 64, PermissionDenied),
        ({"status": "accepted"}, None, PermissionDenied),
        ({"status": "accepted"}, "", PermissionDenied),
        (b"not json", "good", InvalidInput),
        (b"[1, 2]", "good", InvalidInput),
        ({"status": "accepted", "suborder_id": "1"}, "good", InvalidInput),
        ({"status": "finished-ish"}, "good", InvalidInput),
        ({"status": "replied"}, "good", InvalidInput),  # no text
        ({"status": "accepted", "ticket_number": "DXE-WRONG"}, "good", InvalidInput),
        ({"status": "accepted", "suborder_id": 987654}, "good", NotFound),
    ],
)
def test_bad_callbacks_are_refused_and_change_nothing(world, payload, signature, exc):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    if isinstance(payload, dict):
        payload = {"suborder_id": sid, **payload}
    before = snapshot(engine, tid)
    with pytest.raises(exc):
        _cb(engine, settings, payload, signature)
    assert snapshot(engine, tid) == before


def test_callback_signed_with_another_body_is_refused(world):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    signed = json.dumps({"suborder_id": sid, "status": "accepted"}).encode()
    sent = json.dumps({"suborder_id": sid, "status": "returned", "reason": "x"}).encode()
    ts = str(int(time.time()))
    secret = handoff.system_secret(settings, "SCJG")
    with pytest.raises(PermissionDenied), session_scope(engine) as s:
        handoff_callback.handle_callback(s, settings, sent, handoff.sign(secret, signed, ts), ts)
    assert suborders(engine, tid)[0].status == "dispatched"


def test_callbacks_refused_when_no_secret_is_configured(world, monkeypatch):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    body = json.dumps({"suborder_id": sid, "status": "accepted"}).encode()
    ts = str(int(time.time()))
    sig = handoff.sign(handoff.system_secret(settings, "SCJG"), body, ts)
    monkeypatch.delenv("CALLCENTER_HANDOFF_SECRET")
    with pytest.raises(PermissionDenied, match="密钥"), session_scope(engine) as s:
        handoff_callback.handle_callback(s, settings, body, sig, ts)
    assert suborders(engine, tid)[0].status == "dispatched"


# ------------------------------------------------------------------ #17: per-system, bound, fresh


def test_each_system_has_its_own_secret(world, monkeypatch):
    _engine, settings = world
    scjg, swj = handoff.system_secret(settings, "SCJG"), handoff.system_secret(settings, "SWJ")
    assert scjg and swj and scjg != swj and SECRET.encode() not in (scjg, swj)
    # an explicit per-system secret (settings / CALLCENTER_HANDOFF_SECRETS__SWJ) wins
    s2 = settings.model_copy(update={"handoff_secrets": {"SWJ": SecretStr("swj-own-secret")}})
    assert handoff.system_secret(s2, "SWJ") == b"swj-own-secret"
    # so does the env var a departments.yaml entry names
    cfg = settings.config_dir / "departments.yaml"
    depts = yaml.safe_load(cfg.read_text("utf-8"))
    for entry in depts["departments"]:
        if entry["code"] == "XNPT":
            entry["handoff_secret_env"] = "TEST_XNPT_SECRET"
    cfg.write_text(yaml.safe_dump(depts, allow_unicode=True), "utf-8")
    monkeypatch.setenv("TEST_XNPT_SECRET", "platform-secret")
    assert handoff.system_secret(settings, "XNPT") == b"platform-secret"


def test_a_system_cannot_answer_for_another_systems_suborder(world):
    engine, settings = world
    tid, (a, b) = _dispatch(engine, settings, ["SCJG", "SWJ"])
    before = snapshot(engine, tid)
    # SWJ's system signs a callback for SCJG's sub-order
    with pytest.raises(PermissionDenied):
        _cb(engine, settings, {"suborder_id": a, "status": "accepted"}, system="SWJ")
    # the old shared secret signs nothing any more
    ts = str(int(time.time()))
    body = json.dumps({"suborder_id": a, "status": "accepted"}).encode()
    with pytest.raises(PermissionDenied), session_scope(engine) as s:
        handoff_callback.handle_callback(
            s, settings, body, handoff.sign(SECRET.encode(), body, ts), ts
        )
    assert snapshot(engine, tid) == before
    assert _cb(engine, settings, {"suborder_id": b, "status": "accepted"}, system="SWJ") == (
        "accepted"
    )


def test_a_suborder_never_handed_off_takes_no_callback(world):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["RSJ"])  # no handoff_url: inbox only
    assert suborders(engine, tid)[0].handoff_status is None
    before = snapshot(engine, tid)
    for system in ("RSJ", "SCJG", "XNPT"):
        with pytest.raises(PermissionDenied, match="未交由外部系统"):
            _cb(engine, settings, {"suborder_id": sid, "status": "accepted"}, system=system)
    assert snapshot(engine, tid) == before


@pytest.mark.parametrize("skew", [-3600, -301, 301, None, "abc", "", "１２３"])
def test_callbacks_outside_the_time_window_are_refused(world, skew):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    before = snapshot(engine, tid)
    ts = str(int(time.time()) + skew) if isinstance(skew, int) else skew
    payload = {"suborder_id": sid, "status": "accepted"}
    if ts is None:  # no timestamp header at all
        body = json.dumps(payload).encode()
        with pytest.raises(PermissionDenied), session_scope(engine) as s:
            handoff_callback.handle_callback(
                s, settings, body, handoff.sign(handoff.system_secret(settings, "SCJG"), body)
            )
    else:
        with pytest.raises(PermissionDenied, match="时间戳"):
            _cb(engine, settings, payload, ts=ts)
    assert snapshot(engine, tid) == before
    # a fresh one within the window passes (and 290 s of skew is tolerated; a loaded machine may
    # take a second or two between signing and checking)
    assert _cb(engine, settings, payload, ts=str(int(time.time()) - 290)) == "accepted"


def test_a_signature_is_bound_to_its_timestamp(world):
    engine, settings = world
    _tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    body = json.dumps({"suborder_id": sid, "status": "accepted"}).encode()
    old = str(int(time.time()) - 3600)
    sig = handoff.sign(handoff.system_secret(settings, "SCJG"), body, old)
    with pytest.raises(PermissionDenied), session_scope(engine) as s:  # new stamp, old signature
        handoff_callback.handle_callback(s, settings, body, sig, str(int(time.time())))
