"""The web workspace: the department inbox page at volume, and the screen-pop path, each beside a
baseline measured in the same run (a static file served by the same app).

Figures (one JSON line last):
- inbox_p50_ms / inbox_p95_ms: GET /inbox (a handler's first page, rendered) with N tickets in
  the database (bulk corpus of bench/ticketing.py, one sub-order each), over loopback HTTP
  against one uvicorn worker started as `callcenter web` starts it; static_p50_ms /
  static_p95_ms: GET /static/app.css from the same server (the floor of one request).
- pop_p50_ms / pop_p95_ms: a ringing call published to Redis the way the bridge's Publisher
  publishes it (snapshot hash + pub/sub delta) → the agent's SSE stream (/console/events) names
  the call → the pop fragment (/console/pop/{id}) is received. No browser: the fragment's render
  in Chromium is not included (tests/e2e/test_e2e_console.py shows the pop in a real browser).

Targets (issue 9): inbox p95 <= 300 ms server time at 200k tickets; screen-pop p95 <= 500 ms.
Usage: python bench/web.py [--tickets 200000] [--requests 200] [--pops 200] [--port N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._serve import web_server  # noqa: E402
from callcenter.ami.publish import keys  # noqa: E402
from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine, session_scope  # noqa: E402
from config.settings import Settings  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_ticketing", ROOT / "bench" / "ticketing.py")
bench_ticketing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_ticketing)  # type: ignore[union-attr]
pct, bulk_corpus = bench_ticketing.pct, bench_ticketing.bulk_corpus

PASSWORD = "bench-password-1"
INTERFACE = "Local/8999@agents"


def prepare(settings: Settings, n: int) -> dict[str, int]:
    from agent_console.security import hash_password
    from ticketing import Role, User, sync_departments

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    pw = hash_password(PASSWORD)
    ids = {}
    with session_scope(engine) as s:
        sync_departments(s, settings)
        for name, role, dept in (
            ("bench_handler", Role.handler, "SCJG"),
            ("bench_agent", Role.agent, None),
        ):
            u = User(username=name, password_hash=pw, role=role.value, department_code=dept)
            s.add(u)
            s.flush()
            ids[name] = u.id
    if n:
        bulk_corpus(engine, n)
    engine.dispose()
    return ids


def login(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30)
    r = c.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    r.raise_for_status()
    return c


def timed_gets(c: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(5):  # warm-up
        c.get(path).raise_for_status()
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out


def pops(base: str, settings: Settings, agent_id: int, n: int) -> list[float]:
    """Publish a ringing call as the bridge does; time until the pop fragment is in hand."""
    import redis

    r = redis.Redis.from_url(settings.redis_url)
    ns = settings.redis_namespace
    r.set(f"{ns}:console:seat:{agent_id}", json.dumps(
        {"ext": "8999", "interface": INTERFACE, "server": "bench", "queues": ["dxe-general"]}
    ))  # fmt: skip
    k = keys(ns, "bench")
    c = login(base, "bench_agent")
    got: dict[str, float] = {}
    ready = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        with c.stream("GET", "/console/events", timeout=None) as resp:
            event = ""
            for line in resp.iter_lines():
                if line.startswith("retry"):
                    ready.set()
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "pop":
                    cid = json.loads(line[6:])["call_id"]
                    pop = c.get(f"/console/pop/{cid}")
                    pop.raise_for_status()
                    got[cid] = time.perf_counter()
                if stop.is_set():
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    ready.wait(10)
    time.sleep(0.3)
    out = []
    for i in range(n):
        cid = f"bench-{uuid.uuid4().hex[:12]}"
        call = {"call_id": cid, "caller": "13800138000", "caller_name": "", "status": "ringing",
                "started": time.time(), "ivr_path": "1", "category": "enterprise",
                "queue": "dxe-general", "position": 0, "wait_seconds": 3, "answered": None,
                "agent": "", "agent_name": "", "hold": False, "recording": "",
                "ticket_number": "", "legs": []}  # fmt: skip
        agent = {"interface": INTERFACE, "name": "bench", "state": "ready", "pause_reason": "",
                 "call_id": "", "ringing": True, "ringing_call": cid, "queues": {},
                 "calls_taken": i}  # fmt: skip
        delta = {"server": "bench", "seq": i + 1, "ts": time.time(), "calls": {cid: call},
                 "queues": {}, "agents": {INTERFACE: agent}}  # fmt: skip
        t0 = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        pipe.sadd(k["servers"], "bench")
        pipe.hset(k["calls"], cid, json.dumps(call, ensure_ascii=False))
        pipe.hset(k["agents"], INTERFACE, json.dumps(agent, ensure_ascii=False))
        pipe.publish(k["channel"], json.dumps(delta, ensure_ascii=False))
        pipe.execute()
        deadline = t0 + 5
        while cid not in got and time.perf_counter() < deadline:
            time.sleep(0.001)
        if cid in got:
            out.append((got[cid] - t0) * 1000)
        r.hdel(k["calls"], cid)
    stop.set()
    r.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=int(os.environ.get("BENCH_TICKETS", 200_000)))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--pops", type=int, default=200)
    ap.add_argument("--port", type=int, default=None, help="web port (default $BENCH_PORT or free)")
    ap.add_argument(
        "--redis-url", default=os.environ.get("CALLCENTER_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    ns = f"bench-web-{uuid.uuid4().hex[:8]}"
    env = {
        "CALLCENTER_DATA_DIR": str(tmp),
        "CALLCENTER_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "CALLCENTER_REDIS_URL": a.redis_url,
        "CALLCENTER_REDIS_NAMESPACE": ns,
        "CALLCENTER_SECRET_KEY": "bench-web-secret-" + uuid.uuid4().hex,  # >= 32 bytes
        "CALLCENTER_LOG_LEVEL": "WARNING",
    }
    settings = Settings(
        data_dir=tmp, database_url=env["CALLCENTER_DATABASE_URL"], redis_url=a.redis_url,
        redis_namespace=ns,
    )  # fmt: skip
    try:
        ids = prepare(settings, a.tickets)
        with web_server(env, a.port) as (base, _proc):
            c = login(base, "bench_handler")
            static = timed_gets(c, "/static/app.css", a.requests)
            inbox = timed_gets(c, "/inbox", a.requests)
            pop = pops(base, settings, ids["bench_agent"], a.pops)
            figures = {
                "tickets": a.tickets,
                "requests": a.requests,
                "inbox_p50_ms": round(pct(inbox, 50), 2),
                "inbox_p95_ms": round(pct(inbox, 95), 2),
                "static_p50_ms": round(pct(static, 50), 2),
                "static_p95_ms": round(pct(static, 95), 2),
                "pops": len(pop),
                "pop_p50_ms": round(pct(pop, 50), 2),
                "pop_p95_ms": round(pct(pop, 95), 2),
                "inbox_target_met": pct(inbox, 95) <= 300,
                "pop_target_met": len(pop) == a.pops and pct(pop, 95) <= 500,
            }
        print(json.dumps(figures))
    finally:
        import redis

        r = redis.Redis.from_url(a.redis_url)
        for key in r.scan_iter(match=f"{ns}*", count=1000):
            r.delete(key)
        r.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
