"""Wallboard push latency: an AMI event entering the bridge → the change seen by SSE clients.

Setup (all real components, one run):
- a replaying AMI peer (own process) streams the captured call traffic (fresh ids per copy) at
  --rate events/s, with a probe every 0.2 s: a QueueMemberPause of agent Local/8999@agents whose
  PausedReason is a fresh marker "p<n>";
- the real bridge (own process) ingests it and publishes to Redis; it records when each probe
  entered it (its raw-event hook: the moment the frame is parsed off the socket);
- 2 web processes (`callcenter web`, SQLite, the same Redis), 50 SSE clients on /wallboard/events
  split between them (this process, asyncio + httpx), each noting when the board first shows
  each marker;
- baseline, same run: a plain Redis pub/sub subscriber on the bridge's delta channel noting when
  the marker is published.
Figures: p50/p95/p99 latency (ms) of both, target p95 <= 200 ms for the SSE clients; RSS of each
web process with its clients connected. Ports 18700-18719 (BENCH_PORT_BASE). One JSON line last.
Usage: .venv/bin/python bench/wallboard.py [--seconds 20] [--clients 50] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.ami.replay import ConnScript, Frame, ReplayServer, Transcript  # noqa: E402

SCENARIOS = ["scenario-answered", "scenario-abandoned", "scenario-transfer", "scenario-sip-hold"]
PROBE_EVERY_S = 0.2
PROBE_IFACE = "Local/8999@agents"
PASSWORD = "bench-password-1"
MARK = re.compile(r'"pause_reason":"(p\d+)"')


def fixtures_dir() -> Path:
    shared = ROOT.parent / "shared"
    if not shared.exists():
        shared = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
    return shared / "fixtures" / "ami"


def probe_frame(n: int) -> str:
    return (
        "Event: QueueMemberPause\r\nPrivilege: agent,all\r\nQueue: dxe-bench\r\n"
        f"MemberName: 压测坐席\r\nInterface: {PROBE_IFACE}\r\nStatus: 1\r\nPaused: 1\r\n"
        f"PausedReason: p{n}\r\n\r\n"
    )


def build_stream(seconds: float, rate: int) -> tuple[list[Frame], int]:
    base: list[str] = []
    for name in SCENARIOS:
        for f in Transcript.load(fixtures_dir(), name).conns[1].stream:
            if "Event: SuccessfulAuth" in f.data or "Event: FullyBooted" in f.data:
                continue
            base.append(f.data)
    out: list[Frame] = []
    total = int(seconds * rate)
    per_probe = max(1, int(rate * PROBE_EVERY_S))
    probes = 0
    copy = 0
    i = 0
    while i < total:
        tag = f"{copy + 20000:05d}"
        for data in base:
            if i >= total:
                break
            # paced in 50 ms batches: per-event sleeps of 2 ms would drift under load
            t = 1.0 + (i // max(1, rate // 20)) * 0.05
            if i % per_probe == per_probe - 1:
                out.append(Frame(len(out), t, "rx", probe_frame(probes)))
                probes += 1
            else:
                out.append(Frame(len(out), t, "rx", data.replace("17955", tag)))
            i += 1
        copy += 1
    return out, probes


def _serve(port_q, seconds: float, rate: int, gate: tuple[str, ...], go) -> None:
    async def main() -> None:
        sc = ConnScript(1, banner="Asterisk Call Manager/11.0.0\r\n")
        sc.stream, probes = build_stream(seconds, rate)
        tr = Transcript("bench", {1: sc})
        lib = [Transcript.load(fixtures_dir(), "actions-status")]
        srv = ReplayServer(
            tr, library=lib, gate=frozenset(gate), conns=[1], speed=1.0, pause_at={1: 1}
        )
        await srv.start()
        port_q.put((srv.port, probes))
        await asyncio.to_thread(go.wait)
        srv.resume_event.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _bridge(port: int, url: str, ns: str, out_q, stop) -> None:
    async def main() -> None:
        import redis.asyncio as aioredis

        from callcenter.bridge import PbxBridge
        from config.settings import AsteriskServer, Settings

        settings = Settings(data_dir=Path(tempfile.mkdtemp()), redis_url=url, redis_namespace=ns)
        r = aioredis.from_url(url)
        cfg = AsteriskServer(name="bench", host="127.0.0.1", port=port, secret="x")
        bridge = PbxBridge(settings, cfg, redis=r, engine=None, flush_interval=0.05)
        entered: dict[str, float] = {}
        orig = bridge.on_raw_event

        def timed(name: str, frame: str) -> None:
            if name == "QueueMemberPause":
                m = re.search(r"PausedReason: (p\d+)", frame)
                if m:
                    entered[m.group(1)] = time.time()
            orig(name, frame)

        bridge.conn._on_raw_event = timed
        await bridge.start()
        await asyncio.to_thread(stop.wait)
        events = bridge.dispatcher.handled + bridge.dispatcher.ignored
        await bridge.stop()
        await r.aclose()
        out_q.put({"entered": entered, "events": events})

    asyncio.run(main())


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def prepare(db_url: str) -> None:
    from agent_console.security import hash_password
    from callcenter.schema import upgrade
    from config.database import make_engine, session_scope
    from ticketing import Role, User

    upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        s.add(User(username="bench_sup", password_hash=hash_password(PASSWORD),
                   role=Role.supervisor.value))  # fmt: skip
    engine.dispose()


async def sse_client(base: str, cookies: dict, seen: dict[str, float], ready: asyncio.Event,
                     stop: asyncio.Event) -> None:  # fmt: skip
    c = httpx.AsyncClient(base_url=base, cookies=cookies, timeout=None)
    try:
        async with c.stream("GET", "/wallboard/events") as resp:
            ready.set()
            async for line in resp.aiter_lines():
                if stop.is_set():
                    return
                if line.startswith("data: "):
                    m = MARK.search(line)
                    if m and m.group(1) not in seen:
                        seen[m.group(1)] = time.time()
    finally:
        await c.aclose()


async def baseline(url: str, ns: str, seen: dict[str, float], stop: asyncio.Event) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(url)
    ps = r.pubsub()
    await ps.subscribe(f"{ns}:live:events")
    while not stop.is_set():
        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg:
            m = MARK.search(msg["data"].decode())
            if m and m.group(1) not in seen:
                seen[m.group(1)] = time.time()
    await ps.aclose()
    await r.aclose()


async def drive(a, bases: list[str], url: str, ns: str, go, procs) -> dict:
    cookies = []
    for base in bases:
        r = httpx.post(base + "/api/v1/auth/login",
                       json={"username": "bench_sup", "password": PASSWORD}, timeout=30)  # fmt: skip
        r.raise_for_status()
        cookies.append(dict(r.cookies))
    stop = asyncio.Event()
    client_seen: list[dict[str, float]] = [{} for _ in range(a.clients)]
    base_seen: dict[str, float] = {}
    readies = [asyncio.Event() for _ in range(a.clients)]
    tasks = [
        asyncio.ensure_future(
            sse_client(
                bases[i % len(bases)], cookies[i % len(bases)], client_seen[i], readies[i], stop
            )
        )
        for i in range(a.clients)
    ]
    tasks.append(asyncio.ensure_future(baseline(url, ns, base_seen, stop)))
    rss_idle = [rss_mb(p.pid) for p in procs]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)), 60)
    await asyncio.sleep(1.0)
    rss = [rss_mb(p.pid) for p in procs]
    go.set()
    await asyncio.sleep(a.seconds + 6.0)
    rss_after = [rss_mb(p.pid) for p in procs]
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"client_seen": client_seen, "base_seen": base_seen, "rss": rss,
            "rss_after": rss_after, "rss_idle": rss_idle}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--redis-url",
                    default=os.environ.get("CALLCENTER_REDIS_URL", "redis://127.0.0.1:6379/0"))  # fmt: skip
    a = ap.parse_args()
    port_base = int(os.environ.get("BENCH_PORT_BASE", "18700"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-wallboard-"))
    ns = f"bench-wb-{uuid.uuid4().hex[:8]}"
    db_url = f"sqlite:///{tmp / 'bench.db'}"
    prepare(db_url)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CALLCENTER_DATA_DIR": str(tmp),
        "CALLCENTER_DATABASE_URL": db_url,
        "CALLCENTER_REDIS_URL": a.redis_url,
        "CALLCENTER_REDIS_NAMESPACE": ns,
        "CALLCENTER_SECRET_KEY": "bench-wallboard-secret-key-32-bytes-or-more",
        "CALLCENTER_LOG_LEVEL": "WARNING",
        "CALLCENTER_ASTERISK": json.dumps([{"name": "bench", "host": "127.0.0.1"}]),
    }
    ctx = mp.get_context("spawn")
    procs: list[subprocess.Popen] = []
    peer = bridge = None
    try:
        ports = [port_base + 1, port_base + 2]
        for port in ports:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "callcenter.cli", "web", "--host", "127.0.0.1",
                 "--port", str(port)], env=env, cwd=ROOT))  # fmt: skip
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base in bases:
            for _ in range(600):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        go = ctx.Event()
        port_q = ctx.Queue()
        peer = ctx.Process(target=_serve, args=(port_q, a.seconds, a.rate,
                                                ("coreshowchannels", "queuestatus", "status"), go),
                           daemon=True)  # fmt: skip
        peer.start()
        ami_port, probes = port_q.get(timeout=60)
        out_q, stop = ctx.Queue(), ctx.Event()
        bridge = ctx.Process(target=_bridge, args=(ami_port, a.redis_url, ns, out_q, stop),
                             daemon=True)  # fmt: skip
        bridge.start()
        time.sleep(2.0)  # bridge logged in and resynced
        got = asyncio.run(drive(a, bases, a.redis_url, ns, go, procs))
        stop.set()
        res = out_q.get(timeout=60)
        entered = res["entered"]
        lat = [
            (t - entered[m]) * 1000
            for seen in got["client_seen"]
            for m, t in seen.items()
            if m in entered
        ]
        base_lat = [(t - entered[m]) * 1000 for m, t in got["base_seen"].items() if m in entered]
        # the replay rate actually reached: events between the first and the last probe
        marks = sorted(entered.values())
        achieved = (
            round((len(marks) - 1) * a.rate * PROBE_EVERY_S / (marks[-1] - marks[0]), 1)
            if len(marks) > 1
            else 0.0
        )
        missed = sum(1 for seen in got["client_seen"] for m in entered if m not in seen)
        figures = {
            "rate_events_s": a.rate,
            "seconds": a.seconds,
            "events_ingested": res["events"],
            "achieved_events_s": achieved,
            "probes": len(entered),
            "probes_sent": probes,
            "clients": a.clients,
            "web_processes": len(procs),
            "sse_p50_ms": round(pct(lat, 50) or 0, 1),
            "sse_p95_ms": round(pct(lat, 95) or 0, 1),
            "sse_p99_ms": round(pct(lat, 99) or 0, 1),
            "sse_samples": len(lat),
            "sse_missed": missed,
            "baseline_pubsub_p50_ms": round(pct(base_lat, 50) or 0, 1),
            "baseline_pubsub_p95_ms": round(pct(base_lat, 95) or 0, 1),
            "baseline_pubsub_p99_ms": round(pct(base_lat, 99) or 0, 1),
            "web_rss_mb_no_clients": got["rss_idle"],
            "web_rss_mb_50_clients": got["rss"],
            "web_rss_mb_after_run": got["rss_after"],
            "target_p95_ms": 200,
            "target_met": bool(lat) and (pct(lat, 95) or 1e9) <= 200,
        }
        print(json.dumps(figures))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for p in (peer, bridge):
            if p is not None and p.is_alive():
                p.terminate()
        import redis

        r = redis.Redis.from_url(a.redis_url)
        for key in r.scan_iter(match=f"{ns}*", count=1000):
            r.delete(key)
        r.close()


if __name__ == "__main__":
    main()
