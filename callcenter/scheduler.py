"""`callcenter scheduler`: rq's CronScheduler puts the periodic jobs on the queues.

One scheduler per deployment (a child of `callcenter run` / `up`); the jobs themselves run on any
worker. What runs, and how often:
    ticketing.run_warning_scan     every warnings.scan_interval_s (sla.yaml): §13 levels kept current
    ticketing.requeue_lost_work    every 5 min: hand-offs and SMS queued but never attempted (Redis lost
                                   them), and policy push runs left unfinished, are queued again
    ticketing.knowledge.run_knowledge_upkeep  hourly: expired knowledge articles marked expired, the
                                   owning department told once before one expires (knowledge.yaml)
    ticketing.run_hotspot_index    every minute: the keywords of the tickets filed since (高频事项分析)
    ticketing.run_assessment_warmup  hourly: every closed month's assessment not cached yet is
                                   computed and kept (ticketing.assessment.cache)
The jobs are idempotent, so a second scheduler (two machines both running `up`) costs a scan, not
a double effect. Job arguments carry a settings snapshot without secrets, as the other jobs do.

Database upkeep that needs one runner per deployment, not one per web process, also lives here:
on PostgreSQL the GIN pending-list cleaner (config.gin). SQLite's WAL checkpointer stays in the
web process, where the writer is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from config.database import make_engine
from config.gin import GinCleaner, start_for
from config.logging import configure_logging, get_logger
from config.queues import queue_name
from config.settings import Settings

log = get_logger("callcenter.scheduler")
LOST_WORK_INTERVAL = 300
KNOWLEDGE_INTERVAL = 3600
HOTSPOT_INTERVAL = 60
ASSESSMENT_INTERVAL = 3600


def build_scheduler(settings: Settings, conn):
    """The CronScheduler with every periodic job registered (not started)."""
    from rq.cron import CronScheduler

    from ticketing import requeue_lost_work, run_warning_scan, warning_scan_interval

    cron = CronScheduler(connection=conn, name=f"{settings.redis_namespace}-scheduler")
    cron.register(
        run_warning_scan,
        queue_name(settings, "default"),
        args=(settings.job_snapshot(),),
        interval=warning_scan_interval(settings),
        job_timeout=600,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        name="warnings",
    )
    cron.register(
        requeue_lost_work,
        queue_name(settings, "default"),
        args=(settings.job_snapshot(),),
        interval=LOST_WORK_INTERVAL,
        job_timeout=300,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        name="lost-work",
    )
    from ticketing import run_knowledge_upkeep

    cron.register(
        run_knowledge_upkeep,
        queue_name(settings, "default"),
        args=(settings.job_snapshot(),),
        interval=KNOWLEDGE_INTERVAL,
        job_timeout=600,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        name="knowledge",
    )
    from ticketing import run_hotspot_index

    cron.register(
        run_hotspot_index,
        queue_name(settings, "default"),
        args=(settings.job_snapshot(),),
        interval=HOTSPOT_INTERVAL,
        job_timeout=300,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        name="hotspots",
    )
    from ticketing import run_assessment_warmup

    cron.register(
        run_assessment_warmup,
        queue_name(settings, "default"),
        args=(settings.job_snapshot(),),
        interval=ASSESSMENT_INTERVAL,
        job_timeout=1800,  # warm_up stops starting months after WARM_BUDGET_S
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        name="assessment",
    )
    return cron


@contextmanager
def database_upkeep(settings: Settings) -> Iterator[GinCleaner | None]:
    """The deployment's one GIN cleaner while the scheduler runs (None unless PostgreSQL)."""
    engine = make_engine(settings.resolved_database_url)
    cleaner = start_for(engine)
    try:
        yield cleaner
    finally:
        if cleaner is not None:
            cleaner.stop()
        engine.dispose()


SCHEDULER_BACKOFF_MAX = 10.0


def run_scheduler(settings: Settings) -> None:
    """rq's CronScheduler until SIGTERM/SIGINT. It quits on any Redis error (a restarting Redis,
    MISCONF while the disk is read-only): then a fresh one starts after a backoff (0.5 s … 10 s),
    so the process lives through Redis going away instead of exiting."""
    import time

    from rq.exceptions import StopRequested

    from config.redis import connect

    configure_logging(settings)
    with database_upkeep(settings):  # one GIN cleaner for the deployment, across retries
        attempt = 0
        stop_asked: list[int] = []

        def request_stop(signum: int, _frame: object) -> None:
            stop_asked.append(signum)
            raise StopRequested()

        while True:
            conn = connect(settings)
            began = time.monotonic()
            try:
                cron = build_scheduler(settings, conn)
                cron._request_stop = request_stop  # the handler cron installs: remember the stop
                log.info("scheduler_start", jobs=[j.name for j in cron.get_jobs()])
                cron.start()  # returns on a stop signal (its handler raises StopRequested)
                return
            except StopRequested:
                return
            except Exception as e:  # Redis errors, and rq's own after Redis lost its registry
                if stop_asked:  # e.g. SchedulerNotFound from register_death on the way out
                    return
                error = f"{type(e).__name__}: {e}"[:300]
            finally:
                conn.close()
            attempt = 0 if time.monotonic() - began > 60 else attempt + 1
            delay = min(SCHEDULER_BACKOFF_MAX, 0.5 * 2**attempt)
            log.warning("scheduler_quit_retrying", error=error, in_seconds=delay)
            try:
                time.sleep(
                    delay
                )  # cron's handlers are still installed: a stop raises StopRequested
            except StopRequested:
                return
