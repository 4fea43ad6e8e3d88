"""高频事项分析 at a county's year of tickets: the /hotspots page and GET /api/v1/hotspots, beside a
bare grouped count of the same month's tickets measured in the same run.

Corpus: N tickets (default 200,000) spread evenly over the last 12 months, texts from
ticketing/data/labelled.csv, every channel and category, one sub-order each, 5 % 重复件, 70 %
resolved, 30 % rated; in the current month an extra topic (停电) rises. Their keywords are
extracted once (ticketing.hotspots.index_all, timed: the scheduler job's throughput).

Figures (one JSON line last):
- index_s, index_per_s: keyword extraction of the whole corpus (what an upgrade's backlog costs)
- refresh_s: the scheduler job's recount of the year's 12 unfiltered months (hotspot_month), and
  month_cold_ms: one month counted from scratch (what a view with a new filter pays per month)
- report_p50_ms: hotspot_report() for the current month in-process, months kept
- api_p50_ms / api_p95_ms: GET /api/v1/hotspots over loopback HTTP, one `callcenter web` worker
- page_p50_ms / page_p95_ms: GET /hotspots (rendered page, the default view), same server
- filtered_first_ms / filtered_p50_ms: GET /hotspots?channel=web: its first view (6 months counted
  and kept) and the views after
- drill_p50_ms: GET /api/v1/hotspots/tickets?keyword=… (a drill-down)
- baseline_count_p50_ms: SELECT category, count(*) … GROUP BY category over the same month
- target_met: page_p95_ms ≤ 1000 (issue #12: the page under ~1 s at 200,000 tickets)

Usage: python bench/hotspots.py [--tickets 200000] [--requests 20] [--database-url URL] [--port N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._serve import web_server  # noqa: E402
from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine, session_scope  # noqa: E402
from config.settings import Settings  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_ticketing", ROOT / "bench" / "ticketing.py")
bench_ticketing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_ticketing)  # type: ignore[union-attr]
pct, sample_texts = bench_ticketing.pct, bench_ticketing.sample_texts

PASSWORD = "bench-password-1"
RISING = "园区厂房突然停电，已经停电两天，生产线停工，请供电公司尽快恢复供电"


def corpus(engine: sa.Engine, n: int, seed: int = 12) -> None:
    """N tickets over the last 365 days (oldest first), written directly in batches."""
    from ticketing.models import utcnow

    rnd = random.Random(seed)
    texts = sample_texts()
    with engine.connect() as c:
        depts = [r[0] for r in c.execute(sa.text("SELECT code FROM department"))]
    now = utcnow()
    step = timedelta(days=365) / max(n, 1)
    cats = ["enterprise", "government", "complaint"]
    chans = ["hotline", "web", "mobile", "window", "voicemail", "opinion", "survey"]
    ratings = ["satisfied", "satisfied", "basically_satisfied", "unsatisfied"]
    batch = 5000
    for b in range(0, n, batch):
        rows, subs, evals = [], [], []
        for i in range(b, min(n, b + batch)):
            tid = i + 1
            created = now - timedelta(days=365) + step * i
            recent = now - created < timedelta(days=25)
            text = RISING if recent and rnd.random() < 0.06 else rnd.choice(texts)
            resolved = (
                created + timedelta(hours=rnd.randint(2, 240)) if rnd.random() < 0.7 else None
            )
            rows.append(
                {
                    "id": tid,
                    "number": f"HS-{tid:09d}",
                    "channel": rnd.choice(chans),
                    "title": text[:30],
                    "content": text,
                    "category": rnd.choice(cats),
                    "urgency": "general",
                    "status": "resolved" if resolved else "dispatched",
                    "warning": "none",
                    "channel_data": "{}",
                    "round": 1,
                    "reopen_count": 0,
                    "created_at": created,
                    "updated_at": created,
                    "resolved_at": resolved,
                    "deadline_at": created + timedelta(days=5),
                    "duplicate_of_id": tid - 1 if tid > 1 and rnd.random() < 0.05 else None,
                }
            )
            subs.append(
                {
                    "ticket_id": tid,
                    "department_code": rnd.choice(depts),
                    "round": 1,
                    "status": "replied" if resolved else "dispatched",
                    "dispatched_at": created,
                    "deadline_at": created + timedelta(days=5),
                }
            )
            if resolved and rnd.random() < 0.43:
                r = rnd.choice(ratings)
                evals.append(
                    {"ticket_id": tid, "round": 1, "process": r, "timeliness": r, "result": r,
                     "overall": r, "source": "submitter", "channel": "link", "superseded": False,
                     "created_at": resolved}
                )  # fmt: skip
        with engine.begin() as c:
            c.execute(
                sa.text(
                    "INSERT INTO ticket (id, number, channel, title, content, category, urgency,"
                    " status, warning, channel_data, round, reopen_count, created_at, updated_at,"
                    " resolved_at, deadline_at, duplicate_of_id) VALUES (:id, :number, :channel,"
                    " :title, :content, :category, :urgency, :status, :warning, :channel_data,"
                    " :round, :reopen_count, :created_at, :updated_at, :resolved_at,"
                    " :deadline_at, :duplicate_of_id)"
                ),
                rows,
            )
            c.execute(
                sa.text(
                    "INSERT INTO suborder (ticket_id, department_code, round, status,"
                    " dispatched_at, deadline_at) VALUES (:ticket_id, :department_code, :round,"
                    " :status, :dispatched_at, :deadline_at)"
                ),
                subs,
            )
            if evals:
                c.execute(
                    sa.text(
                        "INSERT INTO evaluation (ticket_id, round, process, timeliness, result,"
                        " overall, source, channel, superseded, created_at) VALUES (:ticket_id,"
                        " :round, :process, :timeliness, :result, :overall, :source, :channel,"
                        " :superseded, :created_at)"
                    ),
                    evals,
                )
        print(f"  corpus {min(n, b + batch)}/{n}", file=sys.stderr, end="\r")
    if engine.dialect.name == "postgresql":
        with engine.begin() as c:
            for table in ("ticket", "suborder", "evaluation"):
                c.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT MAX(id) FROM {table}))"
                    )
                )
    print(file=sys.stderr)


def prepare(settings: Settings, n: int) -> float:
    """Schema, departments, a leader, the corpus, its keywords. Returns the indexing seconds."""
    from agent_console.security import hash_password
    from ticketing import Role, User, index_all, sync_departments

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with session_scope(engine) as s:
        sync_departments(s, settings)
        s.add(User(username="bench_leader", password_hash=hash_password(PASSWORD),
                   role=Role.leader.value))  # fmt: skip
    corpus(engine, n)
    t0 = time.perf_counter()
    done = 0
    while True:
        with session_scope(engine) as s:
            k = index_all(s, settings, budget_s=20)
        done += k
        print(f"  keywords {done}/{n}", file=sys.stderr, end="\r")
        if k == 0 or done >= n:
            break
    index_s = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as c:
            c.execute(sa.text("ANALYZE"))
    engine.dispose()
    print(file=sys.stderr)
    return index_s


def timed(fn, n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=int(os.environ.get("BENCH_TICKETS", 200_000)))
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--database-url", default=None, help="default: a SQLite file in a temp dir")
    ap.add_argument("--port", type=int, default=None, help="web port (default $BENCH_PORT or free)")
    ap.add_argument(
        "--redis-url", default=os.environ.get("CALLCENTER_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hotspots-"))
    url = a.database_url or f"sqlite:///{tmp / 'bench.db'}"
    ns = f"bench-hs-{uuid.uuid4().hex[:8]}"
    env = {
        "CALLCENTER_DATA_DIR": str(tmp),
        "CALLCENTER_DATABASE_URL": url,
        "CALLCENTER_REDIS_URL": a.redis_url,
        "CALLCENTER_REDIS_NAMESPACE": ns,
        "CALLCENTER_SECRET_KEY": "bench-hotspots-secret-" + uuid.uuid4().hex,
        "CALLCENTER_LOG_LEVEL": "WARNING",
    }
    settings = Settings(data_dir=tmp, database_url=url, redis_url=a.redis_url, redis_namespace=ns)
    try:
        index_s = prepare(settings, a.tickets)
        from ticketing import HotspotQuery, hotspot_report, month_bounds, save_months, this_month

        month = this_month(settings)
        since, until = month_bounds(settings, month)
        engine = make_engine(url)
        bare_sql = sa.text(
            "SELECT category, count(*) FROM ticket WHERE created_at >= :a AND created_at < :b"
            " GROUP BY category"
        )

        def bare() -> None:
            with engine.connect() as c:
                c.execute(bare_sql, {"a": since, "b": until}).all()

        def report() -> None:
            with session_scope(engine, read_only=True) as s:
                hotspot_report(s, settings, HotspotQuery(month=month))

        from ticketing import compute_month, refresh_cache

        t0 = time.perf_counter()
        refresh_cache(lambda: session_scope(engine), settings)
        refresh_s = time.perf_counter() - t0
        with session_scope(engine, read_only=True) as s:
            t0 = time.perf_counter()
            compute_month(s, settings, month)
            month_cold_ms = (time.perf_counter() - t0) * 1000
        baseline = timed(bare, a.requests)
        rep = timed(report, max(5, a.requests // 4))
        with session_scope(engine, read_only=True) as s:
            r = hotspot_report(s, settings, HotspotQuery(month=month))
        with session_scope(engine) as s:
            save_months(s, r)
        top_word = r.keywords[0].key if r.keywords else "停电"
        engine.dispose()
        with web_server(env, a.port) as (base, _proc):
            c = httpx.Client(base_url=base, timeout=60)
            c.post("/api/v1/auth/login", json={"username": "bench_leader", "password": PASSWORD})

            def get(path: str):
                return lambda: c.get(path).raise_for_status()

            api = timed(get(f"/api/v1/hotspots?month={month}"), a.requests)
            page = timed(get(f"/hotspots?month={month}"), a.requests)
            t0 = time.perf_counter()
            c.get(f"/hotspots?month={month}&channel=web").raise_for_status()
            filtered_first = (time.perf_counter() - t0) * 1000
            filtered = timed(get(f"/hotspots?month={month}&channel=web"), a.requests)
            drill = timed(
                get(f"/api/v1/hotspots/tickets?month={month}&keyword={top_word}"), a.requests
            )
        figures = {
            "tickets": a.tickets,
            "database": url.split(":", 1)[0],
            "month": month,
            "month_tickets": r.total,
            "top_keywords": [k.key for k in r.keywords[:5]],
            "rising": [k.key for k in r.rising[:5]],
            "index_s": round(index_s, 1),
            "index_per_s": round(a.tickets / index_s) if index_s else None,
            "refresh_s": round(refresh_s, 1),
            "month_cold_ms": round(month_cold_ms, 1),
            "report_p50_ms": round(statistics.median(rep), 1),
            "api_p50_ms": round(pct(api, 50), 1),
            "api_p95_ms": round(pct(api, 95), 1),
            "page_p50_ms": round(pct(page, 50), 1),
            "page_p95_ms": round(pct(page, 95), 1),
            "filtered_first_ms": round(filtered_first, 1),
            "filtered_p50_ms": round(pct(filtered, 50), 1),
            "drill_p50_ms": round(pct(drill, 50), 1),
            "baseline_count_p50_ms": round(pct(baseline, 50), 2),
            "target_met": pct(page, 95) <= 1000,
        }
        print(json.dumps(figures, ensure_ascii=False))
    finally:
        import redis

        rc = redis.Redis.from_url(a.redis_url)
        for key in rc.scan_iter(match=f"{ns}*", count=1000):
            rc.delete(key)
        rc.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
