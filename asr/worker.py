"""An RQ worker that loads the Vosk model once, in the parent, before it starts forking work-horses.

RQ's default Worker forks a fresh work-horse per job; a model loaded inside the job would be loaded
again for every recording (seconds, hundreds of MB). Loading it in the parent first means every
horse inherits it copy-on-write, so "once per worker process" holds for the forking worker too.
Use it as `rq worker -w asr.worker.AsrWorker …`, via `callcenter asr worker`, or call `preload()`
before `Worker.work()` in a combined worker.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from rq import Worker
from rq.exceptions import StopRequested

from asr.model import LoadedModel, ModelNotConfigured, get_model
from config.settings import Settings, get_settings

log = logging.getLogger("asr.worker")


def preload(settings: Settings) -> LoadedModel | None:
    """Load what every job needs before forking: the Vosk model, the job code, and the ticket
    classifier (trained on first use, ~4 s: paid once here instead of in every work-horse)."""
    for mod in ("asr.jobs", "asr.voicemail", "ticketing.intake"):  # import cost paid once
        importlib.import_module(mod)

    try:
        from ticketing import get_classifier

        get_classifier()
    except Exception:  # the job will raise the real error where it can be retried
        log.exception("ticket classifier not preloaded")
    try:
        lm = get_model(settings)
    except ModelNotConfigured as e:
        log.warning("ASR model not preloaded: %s", e)
        return None
    log.info("ASR model %s loaded (%s, %d Hz)", lm.name, lm.language, lm.sample_rate)
    return lm


class AsrWorker(Worker):
    """Preloads the model; on every registry-maintenance tick also pushes the ASR outbox, so work
    kept in the database while Redis was down is enqueued as soon as any worker is back."""

    settings: Settings | None = None  # None: from the environment (`rq worker -w …`)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        preload(self.settings or get_settings())
        return super().work(*args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        flush_from_worker(self.settings or get_settings())


def flush_from_worker(settings: Settings) -> None:
    from asr.jobs import _engine, flush_outbox, pick_up_untranscribed

    engine = _engine(settings.resolved_database_url, os.getpid())
    if settings.asr_model_path is not None:  # without a model nothing could transcribe them
        try:
            n = pick_up_untranscribed(engine, settings)
            if n:
                log.info("ASR pick-up: %d stored recording(s) queued", n)
        except StopRequested:  # a warm shutdown arrived mid-maintenance: let rq stop
            raise
        except Exception:  # maintenance must never kill the worker
            log.exception("ASR pick-up failed")
    try:
        res = flush_outbox(engine, settings)
        if res.enqueued:
            log.info("ASR outbox: %d job(s) enqueued", res.enqueued)
    except StopRequested:
        raise
    except Exception:  # maintenance must never kill the worker
        log.exception("ASR outbox flush failed")


def run(
    settings: Settings,
    *,
    burst: bool = False,
    name: str | None = None,
    maintenance_interval: int = 30,
    job_monitoring_interval: int = 10,
    worker_ttl: int = 60,
) -> None:
    """A worker on the "asr" queue with the scheduler (needed for Retry intervals).

    How fast a dead worker's job comes back (rq 3.x): its StartedJobRegistry entry expires
    job_monitoring_interval + 60 s after the last heartbeat; a live worker's registry maintenance
    then re-queues it (the job has a Retry). Maintenance only runs when the worker's blocking
    dequeue times out, i.e. every worker_ttl - 15 s at most, hence the short worker_ttl here
    (rq's default of 420 s would leave such a job orphaned for up to ~8 minutes).
    """
    from config.queues import get_queue
    from config.redis import connect

    conn = connect(settings, socket_timeout=None)
    worker = AsrWorker(
        [get_queue(settings, "asr", conn)],
        connection=conn,
        name=name,
        maintenance_interval=maintenance_interval,
        job_monitoring_interval=job_monitoring_interval,
        worker_ttl=worker_ttl,
    )
    worker.settings = settings
    worker.work(burst=burst, with_scheduler=not burst)
