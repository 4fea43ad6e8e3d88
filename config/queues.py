"""RQ queues, namespaced so several deployments (or test runs) can share one Redis."""

from __future__ import annotations

import redis
from rq import Queue

from config.redis import connect
from config.settings import Settings

# Queue roles; workers listen on all of them unless told otherwise.
QUEUES = ("asr", "notify", "handoff", "default")


def queue_name(settings: Settings, name: str) -> str:
    return f"{settings.redis_namespace}:{name}"


def get_queue(settings: Settings, name: str = "default", conn: redis.Redis | None = None) -> Queue:
    return Queue(queue_name(settings, name), connection=conn or connect(settings))
