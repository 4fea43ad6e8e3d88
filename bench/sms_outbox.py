"""SMS outbox: drain rate beside intake rate, and beside the old one-job-per-message drain, all
measured in the same run (issue #17 §7: after a burst 16,867 acceptance notices waited).

Figures (one JSON line last):
- intake_per_s: tickets with an acceptance SMS written through ticketing.submit_many, 50 per
  transaction (the web's intake writer's shape); each commit enqueues its delivery job(s)
- drain_batched_per_s: SMS delivered per second by one rq Worker (forking, as `callcenter worker`
  runs jobs) draining what the intake queued, logged provider (no network)
- drain_per_message_per_s: the baseline, the same worker draining one `deliver` job per message
  (the previous design) for `--baseline` messages
- with --twilio-latency-ms > 0, the same two drains against a local stand-in for Twilio's Messages
  API answering after that delay (a network round trip): twilio_batched_per_s and
  twilio_per_message_per_s
- drain_over_intake: drain_batched_per_s / intake_per_s (>= 1 means the outbox keeps up)

SQLite in a temporary data dir; Redis from CALLCENTER_REDIS_URL or 127.0.0.1:6379 under a private
namespace (its keys are removed afterwards).
Usage: python bench/sms_outbox.py [--tickets 3000] [--baseline 600] [--twilio-latency-ms 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fake_twilio(delay_s: float) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay_s)
            body = json.dumps({"sid": "SM" + uuid.uuid4().hex, "status": "queued"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=3000)
    ap.add_argument("--baseline", type=int, default=600)
    ap.add_argument("--twilio-latency-ms", type=float, default=30.0)
    ap.add_argument("--twilio-messages", type=int, default=300)
    args = ap.parse_args()

    import logging

    import redis
    import structlog
    from rq import Worker
    from sqlalchemy import func, update
    from sqlmodel import select

    from callcenter.schema import upgrade
    from config.database import make_engine, session_scope
    from config.queues import get_queue
    from config.settings import Settings
    from ticketing import notify
    from ticketing.departments import sync_departments
    from ticketing.intake import submit_many
    from ticketing.models import OutboxMessage
    from ticketing.schemas import TicketIn

    # the logged provider writes one line per message: keep the bench's output to the JSON line
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("rq").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-sms-"))
    url = os.environ.get("CALLCENTER_REDIS_URL", "redis://127.0.0.1:6379/0")
    ns = f"benchsms{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp,
        redis_url=url,
        redis_namespace=ns,
        secret_key="bench-secret-key-long-enough-for-32-bytes",
    )
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with session_scope(engine) as s:
        sync_departments(s, settings)
    conn = redis.Redis.from_url(url)
    queue = get_queue(settings, "notify", conn=conn)

    def drain() -> float:
        """Seconds for one forking rq Worker to empty the notify queue (burst)."""
        t0 = time.perf_counter()
        Worker([queue], connection=conn, name=f"{ns}-{uuid.uuid4().hex[:6]}").work(
            burst=True, logging_level="WARNING"
        )
        return time.perf_counter() - t0

    def delivered() -> int:
        with session_scope(engine, read_only=True) as s:
            return s.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("logged", "sent")))
            ).one()

    def pending_rows(n: int) -> list[int]:
        """n outbox rows written directly (no job enqueued)."""
        with session_scope(engine) as s:
            rows = [
                OutboxMessage(to_phone="+8613812345678", body="【店小二】基准", kind="bench")
                for _ in range(n)
            ]
            s.add_all(rows)
            s.flush()
            return [r.id for r in rows]

    def per_message(ids: list[int], snap: dict) -> None:
        for oid in ids:
            queue.enqueue_call("ticketing.notify.deliver", args=(oid, snap), result_ttl=60)

    # what a long-lived worker has loaded before it forks a job (callcenter.run.preload_worker
    # does the same for the service): the classifier for intake, Twilio's client for delivery
    import twilio.rest  # noqa: F401

    from ticketing import get_classifier

    get_classifier()
    try:
        # --- intake: tickets with an acceptance SMS, 50 per transaction
        batch = 50
        t0 = time.perf_counter()
        for start in range(0, args.tickets, batch):
            items = [
                (
                    TicketIn(
                        channel="web",
                        content=f"园区道路照明损坏，请尽快维修（第{i}号）",
                        submitter_phone=f"+86138{i % 10**8:08d}",
                        category="complaint",
                        urgency="general",
                        send_notice=True,
                    ),
                    "bench",
                )
                for i in range(start, min(start + batch, args.tickets))
            ]
            with session_scope(engine) as s:
                submit_many(s, items, settings=settings)
        intake_s = time.perf_counter() - t0
        jobs_queued = queue.count

        # --- drain (batched, the new design)
        before = delivered()
        batched_s = drain()
        batched_n = delivered() - before

        # --- baseline: one job per message, same worker
        ids = pending_rows(args.baseline)
        per_message(ids, notify._snapshot(settings))
        before = delivered()
        baseline_s = drain()
        baseline_n = delivered() - before

        out = {
            "tickets": args.tickets,
            "intake_per_s": round(args.tickets / intake_s, 1),
            "jobs_queued_by_intake": jobs_queued,
            "drained": batched_n,
            "drain_batched_per_s": round(batched_n / batched_s, 1),
            "baseline_messages": baseline_n,
            "drain_per_message_per_s": round(baseline_n / baseline_s, 1),
        }

        if args.twilio_latency_ms > 0:
            srv, base = _fake_twilio(args.twilio_latency_ms / 1000)
            os.environ["CALLCENTER_TWILIO_API_BASE"] = base
            os.environ["CALLCENTER_TWILIO_AUTH_TOKEN"] = "bench-token"
            tw = settings.model_copy(
                update={"twilio_account_sid": "AC" + "0" * 32, "twilio_from_number": "+15005550006"}
            )
            snap = notify._snapshot(tw)
            n = args.twilio_messages
            ids = pending_rows(n)
            notify.enqueue(tw, ids)
            before = delivered()
            tw_batched_s = drain()
            tw_batched_n = delivered() - before
            m = max(1, n // 5)  # the baseline is slow: a fifth of the messages
            ids = pending_rows(m)
            per_message(ids, snap)
            before = delivered()
            tw_single_s = drain()
            tw_single_n = delivered() - before
            srv.shutdown()
            out.update(
                twilio_latency_ms=args.twilio_latency_ms,
                twilio_batched_per_s=round(tw_batched_n / tw_batched_s, 1),
                twilio_per_message_per_s=round(tw_single_n / tw_single_s, 1),
            )
        with session_scope(engine) as s:  # nothing may be left waiting
            left = s.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(("pending", "sending")))
            ).one()
            s.execute(update(OutboxMessage).values(status="logged"))
        out["left_pending"] = left
        out["drain_over_intake"] = round(out["drain_batched_per_s"] / out["intake_per_s"], 2)
        print(json.dumps(out))
    finally:
        for key in conn.scan_iter(f"*{ns}*", count=1000):
            conn.delete(key)
        engine.dispose()


if __name__ == "__main__":
    main()
