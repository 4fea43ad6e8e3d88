"""`callcenter scheduler`: rq's CronScheduler puts the periodic jobs on the queues.

One scheduler per deployment (a child of `callcenter run` / `up`); the jobs themselves run on any
worker. What runs, and how often:
    ticketing.run_warning_scan     every warnings.scan_interval_s (sla.yaml): §13 levels kept current
    ticketing.requeue_lost_work    every 5 min: hand-offs and SMS queued but never attempted (Redis lost
                                   them) are queued again
    ticketing.knowledge.run_knowledge_upkeep  hourly: expired knowledge articles marked expired, the
                                   owning department told once before one expires (knowledge.yaml)
The jobs are idempotent, so a second scheduler (two machines both running `up`) costs a scan, not
a double effect. Job arguments carry a settings snapshot without secrets, as the other jobs do.
"""

from __future__ import annotations

from config.logging import configure_logging, get_logger
from config.queues import queue_name
from config.settings import Settings

log = get_logger("callcenter.scheduler")
LOST_WORK_INTERVAL = 300
KNOWLEDGE_INTERVAL = 3600


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
    return cron


def run_scheduler(settings: Settings) -> None:
    from config.redis import connect

    configure_logging(settings)
    conn = connect(settings)
    cron = build_scheduler(settings, conn)
    log.info("scheduler_start", jobs=[j.name for j in cron.get_jobs()])
    cron.start()
