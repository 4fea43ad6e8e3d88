"""Prometheus metrics, one registry per app (several apps in one process — tests — never collide).

HTTP requests are labelled by route TEMPLATE (/api/v1/tickets/{number}), never the raw path, so
label cardinality stays bounded. Open tickets by status come from one GROUP BY on the indexed
status column at scrape time, cached for a few seconds so a scrape storm cannot load the DB.

Several web processes on one port (callcenter.run.serve_web with workers): a scrape reaches one
of them, so each writes its counters to prometheus_client's multiprocess files
(PROMETHEUS_MULTIPROC_DIR, set before the workers start) and the scrape sums them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from callcenter.run import METRICS_DIR_ENV
from config.database import session_scope
from ticketing import Ticket, TicketStatus

disable_created_metrics()  # the *_created series only add noise to every scrape

OPEN_STATUSES = (
    TicketStatus.pending_dispatch.value,
    TicketStatus.dispatched.value,
    TicketStatus.resolved.value,
    TicketStatus.reopened.value,
)


class OpenTicketsCollector(Collector):
    def __init__(self, engine_getter: Any, ttl_seconds: float = 5.0) -> None:
        self._engine_getter = engine_getter
        self._ttl = ttl_seconds
        self._cached: tuple[float, dict[str, int]] | None = None

    def _counts(self) -> dict[str, int]:
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self._ttl:
            return self._cached[1]
        engine: Engine | None = self._engine_getter()
        counts = dict.fromkeys(OPEN_STATUSES, 0)
        if engine is not None:
            with session_scope(engine, read_only=True) as s:
                rows = s.exec(
                    select(Ticket.status, func.count())
                    .where(Ticket.status.in_(OPEN_STATUSES))  # type: ignore[attr-defined]
                    .group_by(Ticket.status)
                ).all()
            counts.update({status: int(n) for status, n in rows})
        self._cached = (now, counts)
        return counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            "callcenter_open_tickets", "Tickets not yet closed, by status", labels=["status"]
        )
        try:
            counts = self._counts()
        except Exception:  # a scrape must not fail because the DB blinked
            counts = {}
        for status, n in sorted(counts.items()):
            g.add_metric([status], n)
        yield g


class Metrics:
    def __init__(self, engine_getter: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "callcenter_http_requests_total",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "callcenter_http_request_duration_seconds",
            "HTTP request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.tickets_created = Counter(
            "callcenter_tickets_created_total",
            "Tickets created through this web process, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.intake_batch_size = Histogram(
            "callcenter_intake_batch_size",
            "Ticket creations written per transaction by this web process's intake writer",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.intake_batch_seconds = Histogram(
            "callcenter_intake_batch_seconds",
            "Time the intake writer took per transaction (authorise, classify, write, commit)",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        # collectors computed at scrape time (the same in every process): not summed
        self._live: list[Collector] = []
        self.add_collector(OpenTicketsCollector(engine_getter))

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)
        self._live.append(collector)

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's registry, or with several web processes the
        counters and histograms of all of them (dead ones included: a counter never goes back)."""
        if not os.environ.get(METRICS_DIR_ENV):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for collector in self._live:
            registry.register(collector)
        return generate_latest(registry)

    def observe_intake_batch(self, size: int, seconds: float) -> None:
        self.intake_batch_size.observe(size)
        self.intake_batch_seconds.observe(seconds)
