"""Ticketing throughput and query latency, each beside a bare baseline measured in the same run.

Figures (one JSON line last):
- service_create_per_s: tickets/s through ticketing.submit, one at a time (one process);
  service_batch_create_per_s: through ticketing.submit_many, 32 per transaction
- HTTP: POST /api/v1/tickets against one uvicorn worker started as `callcenter web` starts it,
  from 32 keep-alive connections (a minimal HTTP/1.1 client, _Conn, so the load generator sharing
  the machine costs ~0.2 ms CPU a request rather than httpx's ~3 ms), measured twice: on a fresh
  database ("http_fresh") and with the bulk corpus in it ("http_at_N"). Each has
  - closed: each connection sends its next request when the last is answered; the rate is the
    server's capacity, and by Little's law the mean latency is 32 / rate (at 500/s, 64 ms), so
    a closed loop of 32 can meet p99 <= 50 ms only well above 600/s;
  - open: requests are due at a fixed rate (--rate, default 500/s, the target) whatever the
    answers, spread over the 32 connections; latency counts from when a request was due
    (coordinated omission corrected), so a server slower than the rate shows a growing queue.
  baseline_insert_per_s: a bare single-row INSERT+COMMIT loop
- inbox_p95_ms, search_p95_ms, list_p95_ms at N tickets; baseline_select_p95_ms: a bare indexed
  SELECT by primary key
- classifier held-out metrics (from bench/classifier.py's classifier_figures)

Targets (issue 2): >= 500 tickets/s over HTTP on one worker with p99 <= 50 ms (read here as the
open loop at 500/s); inbox/search p95 <= 20 ms at 200k.
Usage: python bench/ticketing.py [--tickets 200000] [--http-requests 4000] [--rate 500] [--db-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine, readonly, session_scope  # noqa: E402
from config.settings import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_texts() -> list[str]:
    import csv

    path = ROOT / "ticketing" / "data" / "labelled.csv"
    with path.open(encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


# ---------------------------------------------------------------- baselines
def baseline_insert(engine: sa.Engine, n: int) -> float:
    meta = sa.MetaData()
    t = sa.Table(
        "bench_baseline",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.String(200)),
    )
    meta.drop_all(engine)
    meta.create_all(engine)
    t0 = time.perf_counter()
    for i in range(n):
        with engine.begin() as c:
            c.execute(t.insert().values(body=f"row {i}"))
    rate = n / (time.perf_counter() - t0)
    meta.drop_all(engine)
    return rate


def baseline_select(engine: sa.Engine, ids: list[int], n: int) -> float:
    times = []
    with readonly(engine).connect() as c:
        for _ in range(n):
            i = random.choice(ids)
            t0 = time.perf_counter()
            c.execute(sa.text("SELECT id, number FROM ticket WHERE id = :i"), {"i": i}).all()
            times.append((time.perf_counter() - t0) * 1000)
    return pct(times, 95)


# ---------------------------------------------------------------- service layer
def service_create(settings: Settings, engine: sa.Engine, n: int) -> float:
    from ticketing.intake import submit
    from ticketing.schemas import TicketIn

    texts = sample_texts()
    t0 = time.perf_counter()
    for i in range(n):
        with session_scope(engine) as s:
            submit(
                s,
                TicketIn(
                    channel="web",
                    content=random.choice(texts),
                    submitter_phone=f"1380000{i % 10000:04d}",
                    send_notice=False,
                ),
                settings=settings,
                actor="bench",
            )
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------- bulk corpus
def bulk_corpus(engine: sa.Engine, n: int) -> None:
    """Realistic-looking rows written directly (the query benchmark needs volume, not intake)."""
    texts = sample_texts()
    with readonly(engine).connect() as c:
        depts = [r[0] for r in c.execute(sa.text("SELECT code FROM department"))]
    from ticketing.models import utcnow

    now = utcnow()
    statuses = ["pending_dispatch", "dispatched", "resolved", "closed", "reopened"]
    cats = ["enterprise", "government", "complaint"]
    urg = ["general", "urgent", "critical"]
    chans = ["hotline", "web", "mobile", "window", "voicemail", "opinion", "survey"]
    batch = 5000
    with engine.begin() as c:
        start_id = c.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM ticket")).scalar_one()
    for b in range(0, n, batch):
        rows, subs = [], []
        for i in range(b, min(n, b + batch)):
            tid = start_id + i + 1
            created = now - timedelta(minutes=i)
            text = random.choice(texts)
            channel = random.choice(chans)
            # hotline and voicemail tickets carry their call's id, as intake stores them
            cdata = {"call_id": f"corpus-{tid}"} if channel in ("hotline", "voicemail") else {}
            rows.append(
                {
                    "id": tid,
                    "number": f"BENCH-{tid:09d}",
                    "channel": channel,
                    "title": text[:30],
                    "content": text + f" 编号{tid}",
                    "category": random.choice(cats),
                    "urgency": random.choice(urg),
                    "status": random.choice(statuses),
                    "warning": random.choice(["none", "none", "none", "blue", "yellow", "red"]),
                    "channel_data": json.dumps(cdata),
                    "round": 1,
                    "reopen_count": 0,
                    "created_at": created,
                    "updated_at": created,
                    "deadline_at": created + timedelta(days=5),
                }
            )
            subs.append(
                {
                    "ticket_id": tid,
                    "department_code": random.choice(depts),
                    "round": 1,
                    "status": random.choice(["dispatched", "accepted", "replied"]),
                    "dispatched_at": created,
                    "deadline_at": created + timedelta(days=5),
                }
            )
        with engine.begin() as c:
            c.execute(
                sa.text(
                    "INSERT INTO ticket (id, number, channel, title, content, category, urgency,"
                    " status, warning, channel_data, round, reopen_count, created_at, updated_at,"
                    " deadline_at) VALUES (:id, :number, :channel, :title, :content, :category,"
                    " :urgency, :status, :warning, :channel_data, :round, :reopen_count,"
                    " :created_at, :updated_at, :deadline_at)"
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
        print(f"  corpus {min(n, b + batch)}/{n}", file=sys.stderr, end="\r")
    if engine.dialect.name == "postgresql":
        with engine.begin() as c:  # the rows came with explicit ids: move the sequences past them
            for table in ("ticket", "suborder"):
                c.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT MAX(id) FROM {table}))"
                    )
                )
        with engine.connect() as c:
            # what autovacuum does to a freshly loaded table soon after: statistics, and the
            # visibility map that lets counts run as index-only scans
            c.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as c:
            c.execute(sa.text("ANALYZE"))
    print(file=sys.stderr)


def query_latencies(engine: sa.Engine, n: int) -> dict[str, float]:
    from ticketing.queries import TicketFilter, department_inbox, list_tickets

    with readonly(engine).connect() as c:
        depts = [r[0] for r in c.execute(sa.text("SELECT code FROM department"))]
    words = ["营业执照", "退税", "社保", "施工许可", "不动产登记", "补贴", "拖欠", "投诉"]
    inbox, search, listing = [], [], []
    for _ in range(n):
        with session_scope(engine, read_only=True) as s:
            t0 = time.perf_counter()
            department_inbox(s, random.choice(depts), page=1, page_size=20)
            inbox.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            list_tickets(s, TicketFilter(q=random.choice(words)), page=1, page_size=20)
            search.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            list_tickets(
                s,
                TicketFilter(
                    status="dispatched", category=random.choice(["enterprise", "complaint"])
                ),
                page=1,
                page_size=20,
            )
            listing.append((time.perf_counter() - t0) * 1000)
    return {
        "inbox_p50_ms": round(pct(inbox, 50), 3),
        "inbox_p95_ms": round(pct(inbox, 95), 3),
        "search_p50_ms": round(pct(search, 50), 3),
        "search_p95_ms": round(pct(search, 95), 3),
        "list_p95_ms": round(pct(listing, 95), 3),
    }


# ---------------------------------------------------------------- HTTP
class _Conn:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the bench.

    The load generator shares the machine with the server; httpx costs ~2.5-3.5 ms of CPU per
    request here (a 404 tops out near 300/s), so it would measure itself, not the server. This
    costs a few hundred microseconds.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST /api/v1/tickets HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close:
            self.writer.close()
            self.writer = None
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _body(texts: list[str], i: int, tag: str) -> bytes:
    return json.dumps(
        {
            "channel": "hotline",
            "content": random.choice(texts),
            "submitter_phone": f"139{random.randrange(10**8):08d}",
            "channel_data": {"call_id": f"bench-{tag}{os.getpid()}-{i}"},
            "send_notice": False,
        },
        ensure_ascii=False,
    ).encode()


async def http_closed(
    conns: list[_Conn], texts: list[str], n: int, tag: str
) -> dict[str, float | int]:
    """Each connection sends its next request when the last is answered."""
    lat: list[float] = []
    errors = 0
    counter = iter(range(n))

    async def one_client(conn: _Conn) -> None:
        nonlocal errors
        for i in counter:
            payload = _body(texts, i, tag)
            t0 = time.perf_counter()
            status, data = await conn.post(payload)
            lat.append((time.perf_counter() - t0) * 1000)
            if status != 201:
                errors += 1
                if errors < 3:
                    print("  http error", status, data[:300], file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in conns))
    elapsed = time.perf_counter() - t0
    return {
        "per_s": round(n / elapsed, 1),
        "p50_ms": round(pct(lat, 50), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "errors": errors,
    }


async def http_open(
    conns: list[_Conn], texts: list[str], rate: float, n: int, tag: str
) -> dict[str, float | int]:
    """Request i is due at i / rate; a free connection takes the next due request (waiting until
    it is due). Latency runs from the due time, so queueing behind a slow server counts."""
    lat: list[float] = []
    errors = 0
    counter = iter(range(n))
    start = time.perf_counter() + 0.05

    async def one_client(conn: _Conn) -> None:
        nonlocal errors
        for i in counter:
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, _ = await conn.post(_body(texts, i, tag))
            lat.append((time.perf_counter() - due) * 1000)
            if status != 201:
                errors += 1

    await asyncio.gather(*(one_client(c) for c in conns))
    elapsed = time.perf_counter() - start
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(n / elapsed, 1),
        "p50_ms": round(pct(lat, 50), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "max_ms": round(max(lat), 2),
        "errors": errors,
    }


async def http_runs(
    base: str, token: str, n: int, concurrency: int, rate: float, tag: str
) -> dict[str, object]:
    texts = sample_texts()
    host, _, port = base.removeprefix("http://").partition(":")
    conns = [_Conn(host, int(port), token) for _ in range(concurrency)]
    # warm-up: untimed creates (first-use costs: pools, caches) stay out of the steady state
    for i in range(50):
        status, data = await conns[i % concurrency].post(_body(texts, i, f"{tag}warm-"))
        if status != 201:
            raise RuntimeError(f"warm-up create failed: {status} {data[:300]!r}")
    out: dict[str, object] = {"closed": await http_closed(conns, texts, n, f"{tag}c-")}
    out["open"] = await http_open(conns, texts, rate, n, f"{tag}o-")
    for c in conns:
        c.close()
    return out


def run_http(
    settings_env: dict[str, str], n: int, concurrency: int, rate: float, tag: str
) -> dict[str, object]:
    port = free_port()
    env = {**os.environ, **settings_env, "CALLCENTER_PORT": str(port)}
    # Started exactly as production starts it (`callcenter web`: configure_logging, one uvicorn
    # worker, no access log), so CALLCENTER_LOG_LEVEL applies as it would in a deployment.
    cli = Path(sys.executable).with_name("callcenter")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "callcenter.cli"]
    proc = subprocess.Popen(
        [*cmd, "web", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        r = httpx.post(
            base + "/api/v1/auth/login", json={"username": "bench", "password": "bench-password-1"}
        )
        r.raise_for_status()
        token = r.json()["access_token"]
        cpu0 = _cpu_seconds(proc.pid)
        out = asyncio.run(http_runs(base, token, n, concurrency, rate, tag))
        # the server's own CPU per request (both loops and the warm-up): what one worker spends
        out["server_cpu_ms_per_request"] = round(
            (_cpu_seconds(proc.pid) - cpu0) / (2 * n + 50) * 1000, 3
        )
        return out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_batch_create(settings: Settings, engine: sa.Engine, n: int, size: int = 32) -> float:
    from ticketing import submit_many

    texts = sample_texts()
    t0 = time.perf_counter()
    for b in range(0, n, size):
        items = [
            (
                {
                    "channel": "web",
                    "content": random.choice(texts),
                    "submitter_phone": f"1370000{i % 10000:04d}",
                    "send_notice": False,
                },
                "bench",
            )
            for i in range(b, min(n, b + size))
        ]
        with session_scope(engine) as s:
            submit_many(s, items, settings=settings)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tickets", type=int, default=int(os.environ.get("BENCH_TICKETS", 200_000)))
    ap.add_argument("--http-requests", type=int, default=4000)
    ap.add_argument("--rate", type=float, default=500.0, help="the open loop's offered rate")
    ap.add_argument("--service-requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--db-url", default=None, help="default: a fresh SQLite file in a temp dir")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ticketing-"))
    url = args.db_url or f"sqlite:///{tmp / 'bench.db'}"
    redis_url = os.environ.get("CALLCENTER_REDIS_URL")
    server = None
    if not redis_url:
        from config.redis import start_embedded

        server, redis_url = start_embedded(tmp / "redis")
    env = {
        "CALLCENTER_DATABASE_URL": url,
        "CALLCENTER_REDIS_URL": redis_url,
        "CALLCENTER_DATA_DIR": str(tmp / "var"),
        "CALLCENTER_REDIS_NAMESPACE": f"bench{os.getpid()}",
        "CALLCENTER_SECRET_KEY": "bench-secret-key-long-enough-for-32-bytes",
        "CALLCENTER_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    settings = Settings()
    from config.logging import configure_logging

    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    upgrade(url)
    engine = make_engine(url)
    from ticketing.departments import sync_departments

    with session_scope(engine) as s:
        sync_departments(s, settings)
    from agent_console.security import hash_password
    from ticketing.models import User

    with session_scope(engine) as s:
        s.add(
            User(
                username="bench", password_hash=hash_password("bench-password-1"), role="dispatcher"
            )
        )

    out: dict[str, object] = {"bench": "ticketing", "db": engine.dialect.name}
    print("baseline insert …", file=sys.stderr)
    out["baseline_insert_per_s"] = round(baseline_insert(engine, 1000), 1)
    print("service-layer create …", file=sys.stderr)
    out["service_create_per_s"] = round(service_create(settings, engine, args.service_requests), 1)
    out["service_batch_create_per_s"] = round(
        service_batch_create(settings, engine, args.service_requests), 1
    )
    print("HTTP create on a fresh database …", file=sys.stderr)
    out["http_concurrency"] = args.concurrency
    out["http_fresh"] = run_http(env, args.http_requests, args.concurrency, args.rate, "f")
    print(f"bulk corpus of {args.tickets} …", file=sys.stderr)
    bulk_corpus(engine, args.tickets)
    print(f"HTTP create with {args.tickets} tickets in the database …", file=sys.stderr)
    out[f"http_at_{args.tickets}"] = run_http(
        env, args.http_requests, args.concurrency, args.rate, "b"
    )
    with readonly(engine).connect() as c:
        total = c.execute(sa.text("SELECT COUNT(*) FROM ticket")).scalar_one()
        ids = [
            r[0] for r in c.execute(sa.text("SELECT id FROM ticket ORDER BY random() LIMIT 2000"))
        ]
    out["tickets_in_db"] = total
    out["baseline_select_p95_ms"] = round(baseline_select(engine, ids, args.queries), 3)
    out.update(query_latencies(engine, args.queries))
    try:
        sys.path.insert(0, str(ROOT / "bench"))
        from classifier import classifier_figures  # type: ignore[import-not-found]

        out["classifier"] = classifier_figures()
    except Exception as e:
        out["classifier_error"] = repr(e)
    out["targets"] = {
        "http_open_achieved_per_s": ">=500 (offered 500)",
        "http_open_p99_ms": "<=50",
        "inbox_p95_ms": "<=20",
        "search_p95_ms": "<=20",
    }
    engine.dispose()
    if server is not None:
        server.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)  # a 200k SQLite corpus is ~300 MB
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
