"""CPU cost of one synchronous write of each kind, measured in-process (issue 17).

The app runs in this process (starlette's TestClient, SQLite under a temporary data dir, Redis at
CALLCENTER_REDIS_URL or 127.0.0.1:6379 under a private namespace); the data are seeded as
bench/concurrency.py seeds them. Per kind (签收 accept, 回复 reply, staff evaluation, the public
form, a recording playback) a few requests warm up, then N are measured one at a time; beside
them, the same-run baseline: GET /docs (no database, no worker thread) through the same client.

--db-url: on PostgreSQL instead (a fresh database there, dropped afterwards, as
bench/concurrency.py does): there every statement is a round trip, so the statements per request
(counted by a SQLAlchemy listener, the app's background checks left out) are the figure to cut.

Figures per kind: process CPU ms per request (min of the repeats), statements per request, and,
when run under callgrind,
instructions per request (exact: the figure to compare before/after on a loaded machine):

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/wc.%p \\
        python bench/write_cost.py --n 10 --callgrind

(--callgrind switches instrumentation on around each kind's N requests with callgrind_control
and reads the counts of each dump). The client's own cost is included in both figures (the same
before and after a change). --show-sql prints the statements of one request of each kind (what
to read before cutting one). One JSON line last.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench._serve import scratch_database  # noqa: E402
from bench.concurrency import KINDS, PASSWORD, _write, seed  # noqa: E402
from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine  # noqa: E402
from config.settings import Settings  # noqa: E402
from config.upkeep import UpkeepThread  # noqa: E402

WARMUP = 3
# the same-run baseline: a static route (HTML built without the database or a worker thread, as
# bench/concurrency.py's), through the same client
BASELINE = "static_docs"


def _callgrind(cmd: str) -> None:
    subprocess.run(["callgrind_control", cmd, str(os.getpid())], check=True, capture_output=True)


def _last_dump_ir(out_prefix: str) -> int:
    """Instructions of the newest callgrind dump of this process."""
    files = sorted(glob.glob(f"{out_prefix}.*"), key=os.path.getmtime)
    for line in Path(files[-1]).read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError("no summary in the callgrind dump")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30, help="measured requests per kind")
    ap.add_argument("--repeat", type=int, default=3, help="repeats (CPU time: the min)")
    ap.add_argument("--callgrind", action="store_true", help="running under callgrind")
    ap.add_argument("--out", default=None, help="callgrind output prefix (default /tmp/wc.PID)")
    ap.add_argument(
        "--tune-gc",
        action="store_true",
        help="tune the collector as the served app does (create_server_app: gc.freeze after "
        "start-up, a larger young generation); without it, start-up's objects stay in sight",
    )
    ap.add_argument("--db-url", default=None, help="PostgreSQL server URL (default: SQLite)")
    ap.add_argument(
        "--show-sql", action="store_true", help="print the statements of one request of each kind"
    )
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    repeat = 1 if args.callgrind else args.repeat
    per_kind = (WARMUP + args.n) * repeat + 1 + (2 if args.show_sql else 0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-write-cost-"))
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    db_url, drop_database = scratch_database(args.db_url, tmp, "bench_wc")
    redis_url = os.environ.get("CALLCENTER_REDIS_URL") or "redis://127.0.0.1:6379/0"
    settings = Settings(
        data_dir=tmp / "var",
        database_url=db_url,
        redis_url=redis_url,
        redis_namespace=namespace,
        secret_key="bench-secret-key-" + uuid.uuid4().hex,
        public_rate_limit_per_minute=100000,
    )
    try:
        upgrade(db_url)
        engine = make_engine(db_url)
        data = seed(settings, engine, per_kind)
        engine.dispose()
        from fastapi.testclient import TestClient

        from agent_console.app import create_app

        cpu_ms: dict[str, float] = {}
        ir: dict[str, int] = {}
        statements: dict[str, float] = {}
        counted = [0]
        shown: list[str] = []

        @sa.event.listens_for(sa.Engine, "before_cursor_execute")
        def _count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            # not the app's background threads (the /healthz monitor, the WAL checkpointer)
            upkeep = {c.name for c in UpkeepThread.__subclasses__()}
            if threading.current_thread().name not in upkeep:
                counted[0] += 1
                if args.show_sql:
                    shown.append(" ".join(statement.split())[:300])

        with TestClient(create_app(settings, tune_gc=args.tune_gc)) as client:
            tokens = {}
            for user in ("handler", "agent", "dispatcher"):
                r = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
                r.raise_for_status()
                tokens[user] = r.json()["access_token"]

            def send(kind: str, i: int) -> None:
                if kind == BASELINE:
                    r = client.get("/docs")
                    assert r.status_code == 200
                    return
                method, path, headers, body = _write(kind, i, data, tokens)
                if body:
                    headers = {**headers, "Content-Type": "application/json"}
                r = client.request(method, path, headers=headers, content=body or None)
                assert r.status_code < 400, (kind, r.status_code, r.text[:200])

            for kind in (*KINDS, BASELINE):
                if args.show_sql:
                    send(kind, 10_000 - 1)
                    shown.clear()
                    send(kind, 10_000 - 2)
                    print(f"--- {kind}: {len(shown)} statements", file=sys.stderr)
                    for line in shown:
                        print("  " + line, file=sys.stderr)
                best = None
                for rep in range(repeat):
                    for i in range(WARMUP):
                        send(kind, 10_000 + rep * 100 + i)
                    if args.callgrind:
                        _callgrind("--zero")
                        _callgrind("--instr=on")
                    t0, n0 = time.process_time(), counted[0]
                    for i in range(args.n):
                        send(kind, rep * 1000 + i)
                    spent = (time.process_time() - t0) / args.n * 1000
                    statements[kind] = round((counted[0] - n0) / args.n, 1)
                    if args.callgrind:
                        _callgrind("--dump")
                        _callgrind("--instr=off")
                        ir[kind] = _last_dump_ir(args.out or f"/tmp/wc.{os.getpid()}") // args.n
                    best = spent if best is None else min(best, spent)
                cpu_ms[kind] = round(best or 0.0, 2)
                print(
                    f"{kind}: {cpu_ms[kind]} ms CPU, {statements[kind]} statements "
                    f"{ir.get(kind, '')}",
                    file=sys.stderr,
                )
        figures: dict[str, object] = {
            "bench": "write_cost",
            "n": args.n,
            "db": make_url(db_url).get_backend_name(),
            "cpu_ms_per_request": cpu_ms,
            "statements_per_request": statements,
            "tune_gc": args.tune_gc,
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        if ir:
            figures["instructions_per_request"] = ir
        print(json.dumps(figures, ensure_ascii=False))
    finally:
        drop_database()
        try:
            import redis

            r = redis.Redis.from_url(redis_url)
            for key in r.scan_iter(match=f"*{namespace}*", count=1000):
                r.delete(key)
            r.close()
        except Exception:
            pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
