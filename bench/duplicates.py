"""The 重复件 check on intake's hot path (ticketing.duplicates), beside a same-run baseline.

A corpus of N tickets from a pool of phones (so every new intake's phone has earlier tickets),
then batches of 32 intakes through ticketing.submit_many:
- batch_with_check_per_s: each intake carries a phone from the pool (the check runs: one SELECT
  per batch through ix_ticket_phone_created)
- batch_baseline_per_s: the same intakes without a phone (the check is skipped)
- find_p95_ms: duplicates.find alone for a batch of 32 candidates
Usage: python bench/duplicates.py [--tickets 100000] [--batches 60] [--db-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine, session_scope  # noqa: E402
from config.settings import Settings  # noqa: E402

TEXTS = [
    "园区道路路灯坏了一个多月，晚上货车进出非常危险，请尽快维修",
    "企业办理施工许可证材料反复退回，希望给出一次性告知",
    "厂区周边噪音扰民，夜间施工影响职工休息",
    "申请的稳岗补贴迟迟没有到账，想了解进度",
    "供水管道破裂，厂区停水两天影响生产",
]
PHONES = 20_000


def corpus(engine: sa.Engine, n: int) -> None:
    from ticketing.models import utcnow

    now = utcnow()
    rows = []
    for i in range(n):
        created = now - timedelta(minutes=i)
        text = random.choice(TEXTS)
        rows.append(
            {
                "number": f"DUP-{i:09d}",
                "channel": "web",
                "title": text[:30],
                "content": f"{text} 编号{i}",
                "category": random.choice(["enterprise", "government", "complaint"]),
                "urgency": "general",
                "status": random.choice(["dispatched", "resolved", "closed"]),
                "warning": "none",
                "channel_data": "{}",
                "round": 1,
                "reopen_count": 0,
                "submitter_phone": f"+86138{i % PHONES:08d}",
                "created_at": created,
                "updated_at": created,
                "closed_at": created,
                "conduct": False,
                "simulated": False,
            }
        )
    cols = ", ".join(rows[0])
    vals = ", ".join(f":{k}" for k in rows[0])
    with engine.begin() as c:
        for b in range(0, n, 5000):
            c.execute(sa.text(f"INSERT INTO ticket ({cols}) VALUES ({vals})"), rows[b : b + 5000])


def batches(settings: Settings, engine: sa.Engine, count: int, with_phone: bool) -> float:
    from ticketing import submit_many

    t0 = time.perf_counter()
    for _b in range(count):
        items = []
        for _i in range(32):
            data = {"channel": "web", "content": random.choice(TEXTS), "send_notice": False}
            if with_phone:
                data["submitter_phone"] = f"138{random.randrange(PHONES):08d}"
            items.append((data, "bench"))
        with session_scope(engine) as s:
            submit_many(s, items, settings=settings)
    return count * 32 / (time.perf_counter() - t0)


def find_p95(settings: Settings, engine: sa.Engine, rounds: int) -> float:
    from ticketing import duplicates
    from ticketing.models import utcnow

    times = []
    for _ in range(rounds):
        cands = [
            duplicates.Candidate(
                f"+86138{random.randrange(PHONES):08d}", None, "enterprise", random.choice(TEXTS)
            )
            for _ in range(32)
        ]
        with engine.connect() as c:
            t0 = time.perf_counter()
            duplicates.find(c, settings, cands, utcnow())
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[int(len(times) * 0.95) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--db-url", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dup-"))
    url = args.db_url or f"sqlite:///{tmp / 'bench.db'}"
    os.environ.setdefault("CALLCENTER_LOG_LEVEL", "WARNING")
    settings = Settings(database_url=url, data_dir=tmp / "var")
    upgrade(url)
    engine = make_engine(url)
    from ticketing.departments import sync_departments

    with session_scope(engine) as s:
        sync_departments(s, settings)
    print(f"corpus of {args.tickets} …", file=sys.stderr)
    corpus(engine, args.tickets)
    batches(settings, engine, 5, True)  # warm up (classifier, caches)
    out: dict[str, object] = {"bench": "duplicates", "db": engine.dialect.name, "n": args.tickets}
    out["batch_baseline_per_s"] = round(batches(settings, engine, args.batches, False), 1)
    out["batch_with_check_per_s"] = round(batches(settings, engine, args.batches, True), 1)
    out["find_p95_ms"] = round(find_p95(settings, engine, 200), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
