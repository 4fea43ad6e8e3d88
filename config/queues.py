"""RQ queues, namespaced so several deployments (or test runs) can share one Redis."""

from __future__ import annotations

import contextlib
from typing import Any

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


def bounded_unsubscribe(worker: Any) -> None:
    """rq's Worker.unsubscribe with a bounded wait. redis-py 8's PubSubWorkerThread.stop() joins
    the thread, which after the unsubscribe sits in get_message(timeout=60) waiting to be
    subscribed again: a worker's stop hung 60 s and more (a burst worker in a test for good). The
    daemon thread ends by itself; the process does not wait for it. Used by callcenter.run's
    worker and, for rq's own worker classes, by the test suite."""
    thread = getattr(worker, "pubsub_thread", None)
    if not thread:
        return
    with contextlib.suppress(Exception):
        worker.pubsub.unsubscribe()
    try:
        thread.stop(timeout=1)
    except TypeError:  # redis-py before 8: stop() only clears the flag
        thread.stop()
    thread.join(timeout=1)
    if not thread.is_alive():
        with contextlib.suppress(Exception):
            worker.pubsub.close()
