"""FastAGI IVR under load: 500 concurrent simulated Asterisk sessions over loopback.

The real FastAGI server (ivr.agi.AgiServer) runs in its own process; this process plays up to
`--sessions` concurrent Asterisk channels (ivr.agi_sim.SimulatedAsterisk: the agi_* environment,
then a "200 result=…" reply to every command), each pressing keys with a short think time on
GET DATA / STREAM FILE, and starts a new call as soon as one ends, for `--seconds`.

Measured per AGI round trip, on the Asterisk side: reply written → next command read (the server's
turn-around plus loopback). Baseline in the same run: a raw asyncio echo server in its own process
and the same number of concurrent connections doing the same round-trip schedule, so the figure
shows what the IVR adds over bare asyncio sockets on this machine.

Targets: 500 concurrent sessions, p99 ≤ 10 ms. Prints ONE JSON line last.
    .venv/bin/python bench/agi.py            # ~70 s
    .venv/bin/python bench/agi.py --quick    # ~20 s
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.agi_sim import DEFAULT_ENV, SimulatedAsterisk

TARGET_SESSIONS = 500


def _run(coro):
    """uvloop when installed (uvicorn[standard] brings it; `callcenter agi serve` uses it too)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


TARGET_P99_MS = 10.0


# ---- server processes ----


def _agi_server_proc(q: mp.Queue, req: mp.Queue) -> None:
    import logging

    logging.disable(logging.INFO)  # one log line per call would measure the logger

    from config.settings import Settings
    from ivr.agi import AgiServer

    async def main() -> None:
        srv = AgiServer(Settings(), host="127.0.0.1", port=0)
        _, port = await srv.start()
        gc.freeze()  # as `callcenter agi serve` does: start-up objects never become garbage
        q.put(port)
        loop = asyncio.get_running_loop()
        while True:  # answer stats requests from the load process
            await loop.run_in_executor(None, req.get)
            q.put({"peak": srv.app.peak, "stats": dict(srv.app.stats)})

    _run(main())


def _echo_server_proc(q: mp.Queue) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        q.put(srv.sockets[0].getsockname()[1])
        await srv.serve_forever()

    _run(main())


def start(target, *extra) -> tuple[mp.Process, int, mp.Queue]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(q, *extra), daemon=True)
    p.start()
    return p, q.get(timeout=60), q


# ---- load ----


def think(scale: float):
    """Caller/playback time before Asterisk answers a command (compressed from real seconds)."""

    def f(cmd: str) -> float:
        if cmd.startswith("GET DATA") or cmd.startswith("WAIT FOR DIGIT"):
            return random.uniform(0.5, 1.5) * scale  # listening to the menu, pressing a key
        if cmd.startswith("STREAM FILE"):
            return random.uniform(0.2, 0.6) * scale
        return 0.0  # SET VARIABLE, ANSWER: immediate, like Asterisk

    return f


def script() -> dict:
    r = random.random()
    env = dict(DEFAULT_ENV)
    env["agi_arg_2"] = "mode=open"  # keep the menu path whatever the wall clock says
    if r < 0.80:
        keys = [random.choice("12340")]
    elif r < 0.95:
        keys = [random.choice("5789#"), random.choice("12340")]
    else:
        env["agi_arg_2"] = "mode=closed"  # after-hours voicemail branch
        keys = []
    env["agi_uniqueid"] = f"{time.time():.0f}.{random.randrange(1 << 30)}"
    return {"env": env, "keys": keys}


class Load:
    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.done = 0
        self.errors = 0
        self.lat: list[float] = []

    def enter(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        self.active -= 1


async def agi_worker(port: int, deadline: float, load: Load, scale: float) -> None:
    f = think(scale)
    while time.perf_counter() < deadline:
        load.enter()
        try:
            t = await SimulatedAsterisk("127.0.0.1", port, think=f, timeout=None, **script()).run()
            if not t.closed_by_server or not t.variables.get("IVR_RESULT"):
                load.errors += 1
            load.lat.extend(t.latencies)
            load.done += 1
        except (OSError, TimeoutError):
            load.errors += 1
        finally:
            load.leave()


async def echo_worker(port: int, deadline: float, load: Load, scale: float) -> None:
    # same schedule as a direct-choice AGI call: 9 round trips, think on the 2nd and the last
    schedule = [0.0, 1.0, 0, 0, 0, 0, 0, 0, 0.4]
    line = b'SET VARIABLE IVR_QUEUE "dxe-government"\n'
    while time.perf_counter() < deadline:
        load.enter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i, base in enumerate(schedule):
                if base:
                    lo, hi = (0.5, 1.5) if i == 1 else (0.2, 0.6)
                    await asyncio.sleep(random.uniform(lo, hi) * scale)
                t0 = time.perf_counter()
                writer.write(line)
                await writer.drain()
                echoed = await reader.readline()
                load.lat.append(time.perf_counter() - t0)
                if echoed != line:
                    load.errors += 1
            writer.close()
            load.done += 1
        except (OSError, TimeoutError):
            load.errors += 1
        finally:
            load.leave()


async def run_load(
    worker, port: int, sessions: int, seconds: float, scale: float, load: Load
) -> Load:
    load.peak = 0
    deadline = time.perf_counter() + seconds
    # ramp over 1 s, as calls arrive, not as one SYN burst
    tasks = []
    for i in range(sessions):
        tasks.append(asyncio.create_task(worker(port, deadline, load, scale)))
        if i % 50 == 49:
            await asyncio.sleep(0.1)
    await asyncio.wait_for(asyncio.gather(*tasks), seconds + 60)  # a stuck server fails the run
    return load


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def summary(load: Load) -> dict:
    return {
        "p50_ms": round(pct(load.lat, 0.50), 3),
        "p99_ms": round(pct(load.lat, 0.99), 3),
        "max_ms": round(max(load.lat) * 1000, 3) if load.lat else None,
        "mean_ms": round(statistics.fmean(load.lat) * 1000, 3) if load.lat else None,
        "round_trips": len(load.lat),
        "sessions_completed": load.done,
        "peak_concurrent": load.peak,
        "errors": load.errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=TARGET_SESSIONS)
    ap.add_argument("--seconds", type=float, default=10.0, help="per phase")
    ap.add_argument("--rounds", type=int, default=3, help="echo/IVR phase pairs")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 5 s phases")
    ap.add_argument("--think-scale", type=float, default=1.0, help="multiply think times")
    args = ap.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    if args.quick:
        args.rounds = 2
    random.seed(12345)

    ctx = mp.get_context("spawn")
    req = ctx.Queue()
    echo_proc, echo_port, _ = start(_echo_server_proc)
    agi_proc, agi_port, agi_q = start(_agi_server_proc, req)
    base, agi = Load(), Load()
    try:
        t0 = time.perf_counter()
        # alternate short phases so both see the same background load on a shared machine
        for _ in range(args.rounds):
            _run(run_load(echo_worker, echo_port, args.sessions, seconds, args.think_scale, base))
            _run(run_load(agi_worker, agi_port, args.sessions, seconds, args.think_scale, agi))
        print(f"baseline echo: {summary(base)}", file=sys.stderr)
        print(f"fastagi ivr:   {summary(agi)}", file=sys.stderr)
        req.put("stats")
        server = agi_q.get(timeout=30)
        print(f"server side:   {server}", file=sys.stderr)
        elapsed = time.perf_counter() - t0
    finally:
        for p in (agi_proc, echo_proc):
            p.terminate()
            p.join(5)

    a, b = summary(agi), summary(base)
    result = {
        "bench": "agi",
        "sessions_target": TARGET_SESSIONS,
        "sessions": args.sessions,
        "seconds_per_phase": seconds,
        "rounds": args.rounds,
        "peak_concurrent_sessions": server["peak"],  # counted by the server
        "server_outcomes": server["stats"],
        "sessions_completed": a["sessions_completed"],
        "round_trips": a["round_trips"],
        "rtt_p50_ms": a["p50_ms"],
        "rtt_p99_ms": a["p99_ms"],
        "rtt_max_ms": a["max_ms"],
        "errors": a["errors"],
        "baseline_echo_p50_ms": b["p50_ms"],
        "baseline_echo_p99_ms": b["p99_ms"],
        "baseline_round_trips": b["round_trips"],
        "baseline_errors": b["errors"],
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": bool(
            server["peak"] >= TARGET_SESSIONS and a["p99_ms"] <= TARGET_P99_MS and a["errors"] == 0
        ),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "elapsed_s": round(elapsed, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
