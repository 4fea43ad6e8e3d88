"""Live-PBX benchmark: 100 calls over about a minute through a real Asterisk running the project's
own config (tests/pbx/harness.py), the FastAGI IVR and the bridge, with the bridge killed and
restarted once in the middle.

- calls: Local-channel callers pressing mixed keys (1, 2, 0 answered by Local agents; 3 and 4 go
  to a queue nobody answers and hang up after a few seconds: ~20 % abandoned), one every 0.6 s.
- figures: calls originated, calls reaching the IVR (the PBX's CDR: an IVR decision recorded),
  call records, tickets, duplicates (tickets sharing a call_id), callback tasks, lost (calls that
  reached the IVR without a ticket), and hang-up → ticket latency p50/p95 (the call record's end,
  taken at the Hangup event, to the ticket's commit time).
- baseline: the AMI round trip (Ping) measured in the same run, p50/p95.
Targets: tickets = calls reaching the IVR, 0 duplicates, 0 lost across the bridge restart,
hang-up → ticket p95 <= 2 s.
Needs a runnable Asterisk (../shared/asterisk or CALLCENTER_TEST_ASTERISK); otherwise it prints
the reason in its JSON line. Redis: CALLCENTER_REDIS_URL, else 127.0.0.1:6379.
Usage: .venv/bin/python bench/live_pbx.py [--calls 100] [--seconds 60]  (one JSON line last)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from callcenter.ami.reconcile import COLUMNS  # noqa: E402
from callcenter.bridge import PbxBridge  # noqa: E402
from callcenter.models import CallRecord  # noqa: E402
from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine  # noqa: E402
from config.settings import AsteriskServer, Settings  # noqa: E402
from ivr.agi import AgiServer  # noqa: E402
from tests.pbx.harness import (  # noqa: E402
    LivePbx,
    add_agents,
    asterisk_home,
    free_port,
    originate,
    unusable_reason,
)
from ticketing import Ticket  # noqa: E402
from ticketing.models import CallbackTask  # noqa: E402

OPEN = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 Asia/Shanghai
KEYS = ["1", "2", "0", "1", "2", "0", "1", "2", "3", "4"]  # 2 in 10 to the unanswered queue
AGENTS = [f"80{n:02d}" for n in range(10, 22)]  # 12 answering agents


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))], 3)


def _bridge(settings: Settings, redis, engine) -> PbxBridge:
    return PbxBridge(
        settings, settings.asterisk[0], redis=redis, engine=engine, backoff_base=0.2, backoff_max=1
    )


async def run(n_calls: int, seconds: float) -> dict:
    import redis.asyncio as aioredis

    tmp = Path(tempfile.mkdtemp(prefix="bench-live-pbx-"))
    db = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(db)
    redis_url = os.environ.get("CALLCENTER_REDIS_URL", "redis://127.0.0.1:6379/0")
    root = tmp / "pbx"
    srv = AsteriskServer(
        name="bench",
        port=free_port(),
        secret=SecretStr(uuid.uuid4().hex),
        voicemail_pin=SecretStr("1357"),
        spool_dir=root / "spool",
        pbx_spool_dir=str(root / "spool"),
        cdr_dir=root / "log" / "cdr-custom",
    )
    settings = Settings(
        data_dir=tmp / "var",
        database_url=db,
        redis_url=redis_url,
        redis_namespace=f"bench-{uuid.uuid4().hex[:6]}",
        secret_key="bench-secret-key-" + uuid.uuid4().hex,
        asterisk=[srv],
        agi_port=free_port(),
    )
    pbx = LivePbx(root, settings, asterisk_home())
    pbx.write()
    pbx.start()
    agi = AgiServer(settings, clock=lambda: OPEN, host="127.0.0.1")
    await agi.start()
    r = aioredis.from_url(redis_url)
    engine = make_engine(db)
    bridge = _bridge(settings, r, engine)
    await bridge.start()
    pings: list[float] = []
    try:
        await asyncio.wait_for(bridge.conn.connected_event.wait(), 20)
        queues = {
            "dxe-enterprise": AGENTS,
            "dxe-government": AGENTS,
            "dxe-general": AGENTS,
            "dxe-complaint": ["8009"],
        }
        await add_agents(bridge.conn, queues)
        gap = seconds / n_calls
        t0 = time.monotonic()
        restarted = False
        for i in range(n_calls):
            key = KEYS[i % len(KEYS)]
            stay = 4.0 if key in "34" else 3.0 + (i % 3)
            conn = bridge.conn
            with contextlib.suppress(Exception):
                await originate(conn, f"1390000{i:04d}", key, stay=stay)
            if i % 5 == 0 and bridge.conn.authenticated:
                p0 = time.perf_counter()
                with contextlib.suppress(Exception):
                    await bridge.conn.send({"Action": "Ping"})
                    pings.append(time.perf_counter() - p0)
            if not restarted and i == n_calls // 2:  # kill the bridge: no settle, state lost
                restarted = True
                for t in bridge._tasks:
                    t.cancel()
                bridge.conn.close_transport()
                await asyncio.sleep(1.0)
                bridge = _bridge(settings, r, engine)
                await bridge.start()
                await asyncio.wait_for(bridge.conn.connected_event.wait(), 20)
            await asyncio.sleep(max(0.0, t0 + (i + 1) * gap - time.monotonic()))
        # let every call end (longest: menu + queue + stay), then the bridge store them
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            bridge.state.calls or len(pbx.rx("core show channels concise").strip().splitlines()) > 0
        ):
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        with contextlib.suppress(TimeoutError):
            await bridge.settle(30)
    finally:
        with contextlib.suppress(Exception):
            await bridge.stop()
        await agi.close()
        pbx.stop()
    # the PBX's own record of what reached the IVR
    reached: set[str] = set()
    cdr = settings.asterisk[0].cdr_dir / "dxe.csv"
    if cdr.exists():
        with cdr.open(encoding="utf-8", errors="replace", newline="") as fh:
            for values in csv.reader(fh):
                row = dict(zip(COLUMNS, values, strict=False))
                if row.get("ivr_result"):
                    reached.add(row["linkedid"])
    with Session(engine) as s:
        recs = s.exec(select(CallRecord)).all()
        tickets = s.exec(select(Ticket)).all()
        callbacks = s.exec(select(CallbackTask)).all()
        created = {t.id: t.created_at for t in tickets}
    ticket_calls = [(t.channel_data or {}).get("call_id") for t in tickets]
    with_ticket = {r.call_id for r in recs if r.ticket_id is not None}
    lat = [
        (created[r.ticket_id] - r.ended_at).total_seconds()
        for r in recs
        if r.ticket_id in created and r.ended_at is not None and r.extra.get("source") != "cdr"
    ]
    await r.aclose()
    engine.dispose()
    return {
        "bench": "live_pbx",
        "calls": n_calls,
        "reached_ivr": len(reached),
        "records": len(recs),
        "tickets": len(tickets),
        "duplicates": len(ticket_calls) - len(set(ticket_calls)),
        "lost": len(reached - with_ticket),
        "callbacks": len(callbacks),
        "reconciled_from_cdr": sum(1 for r in recs if (r.extra or {}).get("source") == "cdr"),
        "restored_after_restart": sum(1 for r in recs if (r.extra or {}).get("restored")),
        "hangup_to_ticket_p50_s": pct(lat, 50),
        "hangup_to_ticket_p95_s": pct(lat, 95),
        "baseline_ami_ping_p50_s": pct(pings, 50),
        "baseline_ami_ping_p95_s": pct(pings, 95),
        "ping_mean_s": round(statistics.fmean(pings), 4) if pings else None,
        "bridge_restarts": 1,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    reason = unusable_reason(asterisk_home())
    if reason:
        print(json.dumps({"bench": "live_pbx", "skipped": reason}, ensure_ascii=False))
        return
    print(json.dumps(asyncio.run(run(args.calls, args.seconds)), ensure_ascii=False))


if __name__ == "__main__":
    main()
