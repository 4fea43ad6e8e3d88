"""The policy matcher (ticketing.policy_match) over many enterprise profiles, beside a bare count.

N profiles (industries, size inputs, regions and tags drawn at random), then, in the same run:
- count_ms: SELECT count(*) FROM enterprise — the baseline: one pass over the same rows
- match_ms: one policy's matching_enterprise_ids (every target kind restricted: an industry
  prefix, two size bands, three regions, two tags) — the ids of the enterprises it fits
- match_open_ms: a policy with no restriction (every profile fits: the most rows returned)
- record_ms: the push run's first step for the restricted policy (INSERT … SELECT … ON CONFLICT
  DO NOTHING of the pending push rows), then the same again (all conflicts: nothing added)
- reverse_ms: an enterprise's fitting policies among 200 in-force policies (one UNION ALL)
Each figure is the median of --repeat runs. Target: match_ms ≤ 2000 for 100,000 profiles.
Usage: python bench/policy_push.py [--enterprises 100000] [--repeat 5] [--db-url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine, session_scope  # noqa: E402
from config.settings import Settings  # noqa: E402

CODES = ["C1311", "C1391", "C1411", "C2611", "C3011", "F5211", "F5111", "E4710", "I6510", "A0111"]
REGIONS = [
    "蒲圻街道",
    "赤马港街道",
    "陆水湖街道",
    "中伙铺镇",
    "官塘驿镇",
    "新店镇",
    "赵李桥镇",
    "车埠镇",
]
TAGS = ["外贸", "专精特新", "高新技术企业", "规上企业", "农业产业化", "小微", "文旅"]


def profiles(engine: sa.Engine, settings: Settings, n: int) -> None:
    from ticketing.models import Enterprise, utcnow
    from ticketing.profiles import size_band
    from ticketing.uscc import build_uscc

    now = utcnow()
    rnd = random.Random(12)
    rows = []
    for i in range(n):
        code = rnd.choice(CODES)
        emp, rev = rnd.randint(1, 1500), round(rnd.uniform(10, 50000), 1)
        rows.append(
            {
                "uscc": build_uscc(f"{i:08d}"),
                "name": f"企业{i}",
                "created_at": now,
                "industry_code": code,
                "employees": emp,
                "revenue": rev,
                "assets": rev,
                "size_band": size_band(settings, code, emp, rev, rev),
                "region": rnd.choice(REGIONS),
                "tags": rnd.sample(TAGS, rnd.randint(0, 3)),
                "push_mobile": f"+86138{i:08d}",
                "push_opt_out": rnd.random() < 0.02,
            }
        )
    table = Enterprise.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        for i in range(0, n, 5000):
            c.execute(table.insert(), rows[i : i + 5000])


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--enterprises", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db-url", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    url = args.db_url or f"sqlite:///{tmp / 'bench.db'}"
    settings = Settings(data_dir=tmp / "var", database_url=url)
    upgrade(url)
    engine = make_engine(url)

    from ticketing.departments import sync_departments
    from ticketing.knowledge.models import KbArticle, PolicyPushRun
    from ticketing.knowledge.store import SYSTEM, create_article
    from ticketing.policy_match import matching_enterprise_ids, matching_policies
    from ticketing.policy_push import record_matches, today

    with session_scope(engine) as s:
        sync_departments(s, settings)
    t0 = time.perf_counter()
    profiles(engine, settings, args.enterprises)
    load_s = time.perf_counter() - t0

    def article(**targets) -> int:
        data = {"title": "基准测试政策", "kind": "政策", "department_code": "RSJ", **targets}
        with session_scope(engine) as s:
            return create_article(s, settings, data, SYSTEM, status="published").id or 0

    restricted = article(
        industries=["C13", "C14", "F52"],
        size_bands=["小型", "微型"],
        regions=REGIONS[:3],
        tags=["外贸", "专精特新"],
    )
    open_policy = article()
    for i in range(198):
        article(industries=[CODES[i % len(CODES)][:3]], regions=[REGIONS[i % len(REGIONS)]])
    day = today(settings)

    with session_scope(engine, read_only=True) as s:
        a_restricted = s.get(KbArticle, restricted)
        a_open = s.get(KbArticle, open_policy)
        count_ms, total = timed(
            lambda: s.execute(sa.text("SELECT count(*) FROM enterprise")).scalar_one(), args.repeat
        )
        match_ms, ids = timed(lambda: matching_enterprise_ids(s, a_restricted, day), args.repeat)
        match_open_ms, all_ids = timed(lambda: matching_enterprise_ids(s, a_open, day), args.repeat)
        probe = ids[len(ids) // 2] if ids else 1
        reverse_ms, fits = timed(lambda: matching_policies(s, probe, day), args.repeat)

    with session_scope(engine) as s:
        run = PolicyPushRun(article_id=restricted, requested_by="bench")
        s.add(run)
        s.flush()
        rid = run.id or 0
    record = []
    for _ in range(2):
        with session_scope(engine) as s:
            t0 = time.perf_counter()
            added = record_matches(s, rid, s.get(KbArticle, restricted), None)
            record.append(((time.perf_counter() - t0) * 1000, added))
    engine.dispose()
    out = {
        "bench": "policy_push",
        "dialect": sa.make_url(url).get_backend_name(),
        "enterprises": int(total),
        "load_s": round(load_s, 1),
        "count_ms": round(count_ms, 1),
        "match_ms": round(match_ms, 1),
        "matched": len(ids),
        "match_open_ms": round(match_open_ms, 1),
        "matched_open": len(all_ids),
        "reverse_ms": round(reverse_ms, 1),
        "reverse_policies": 200,
        "reverse_fits": len(fits),
        "record_ms": round(record[0][0], 1),
        "recorded": record[0][1],
        "record_again_ms": round(record[1][0], 1),
        "recorded_again": record[1][1],
        "target_match_ms": 2000,
        "ok": match_ms <= 2000 and match_open_ms <= 2000,
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
