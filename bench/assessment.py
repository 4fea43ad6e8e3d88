"""One month's department assessment (ticketing.assessment.assess) over 1,000,000 tickets on
PostgreSQL, beside a bare grouped count of the same sub-orders measured in the same run.

The month (January 2027, Asia/Shanghai) is generated in SQL (INSERT … SELECT over
generate_series, no per-row round trips): every ticket dispatched to one of 10 departments, a
fifth of them also to a second (parallel); per sub-order its accept and finish clocks (most in
time, some late, some still open), 5 %% returned (with the "suborder_returned" event), 3 %% a 重办
round after 不满意, ~12 %% with a §13 "warning" event, 60 %% of tickets rated, 2 %% 重复件, and
three filler history events per ticket (created, dispatched, accepted) so the event table is the
size the warning query has to read past.

Figures (one JSON line last):
- load_s: generating the rows (and VACUUM ANALYZE)
- baseline_grouped_count_ms: SELECT department_code, count(*) … GROUP BY over the month's
  sub-orders (bare; the same rows the assessment groups)
- assess_ms: the whole assessment computed live (every indicator of every department, scores,
  ranking), as for a running month
- assess_again_ms: the same once more (PostgreSQL's buffers warm)
- portrait_cold_ms: the department portrait (ticketing.assessment.department_portrait: the month,
  its 12-month trend against the city, the slowest matters) of the closed month with nothing
  cached: January computed, the 11 months before it (empty) too
- keep_ms: storing those 12 months in the month cache (cache.keep, what the page does next)
- portrait_warm_ms: the same portrait once the months are kept
- cached_assess_ms: the closed month's assessment read from the month cache
- department_live_ms: one department's figures computed live, its filter inside the row sets
  (the drill-down page's header for a running month)
- drill_down_ms: the first page (200 rows) of one department's 按时办结率 tickets
- drill_down_deep_ms: a page 10,000 rows in
- recompute_ms: the job's work (cache.recompute: January computed and stored again)
- ratio: assess_ms / baseline_grouped_count_ms

Target (issue 12): one month's assessment over 1,000,000 tickets <= 10 s on PostgreSQL.
Usage: python bench/assessment.py [--tickets 1000000]
                                  [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine, session_scope  # noqa: E402
from config.settings import Settings  # noqa: E402
from ticketing.assessment import (  # noqa: E402
    assess,
    department_portrait,
    department_row,
    indicator_rows,
    keep_months,
    parse_period,
    recompute_month,
)

DEPTS = ("SCJG", "SWJ", "RSJ", "ZJJ", "ZRZY", "FGJ", "ZWFW", "STHJ", "GAJ", "JXJ")
# January 2027 in Asia/Shanghai is [2026-12-31 16:00, 2027-01-31 16:00) UTC
MONTH_START = "2026-12-31 16:00:00+00"
MONTH_SECONDS = 31 * 86400


def load(engine: sa.Engine, tickets: int) -> float:
    depts = "ARRAY[" + ",".join(f"'{d}'" for d in DEPTS) + "]"
    t0 = time.perf_counter()
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO department (code, name, active, leaders) SELECT d, d || '局', true, '[]' "
            f"FROM unnest({depts}) d"
        )
        c.exec_driver_sql(
            "INSERT INTO ticket (id, number, channel, title, content, category, urgency, status,"
            " warning, channel_data, round, reopen_count, created_at, updated_at, dispatch_mode,"
            " duplicate_of_id, simulated, conduct) "
            "SELECT x, 'B' || x, 'web', '园区道路照明', '企业反映园区道路照明长期损坏', 'enterprise',"
            " 'general', 'closed', 'none', '{}', CASE WHEN x %% 33 = 0 THEN 2 ELSE 1 END, 0,"
            f" timestamptz '{MONTH_START}' + (x %% {MONTH_SECONDS - 200000}) * interval '1 second',"
            f" timestamptz '{MONTH_START}' + (x %% {MONTH_SECONDS - 200000}) * interval '1 second',"
            " 'manual', CASE WHEN x %% 50 = 7 THEN x - 1 END, false, false"
            f" FROM generate_series(1, {tickets}) x"
        )
        # sub-orders: one per ticket, a second department for every fifth, a 重办 round for 3 %
        c.exec_driver_sql(
            "INSERT INTO suborder (ticket_id, department_code, round, status, deadline_at,"
            " dispatched_by, dispatched_at, accepted_at, replied_at, accept_due_at, warning,"
            " sla_next_at, extension_until) "
            "SELECT t.id, d.code, r.round,"
            " CASE WHEN t.id %% 20 = 3 THEN 'returned' WHEN t.id %% 10 = 9 THEN 'accepted'"
            "      ELSE 'replied' END,"
            " t.created_at + interval '5 days', 'bench', t.created_at + (r.round - 1) * interval '2 days',"
            " CASE WHEN t.id %% 20 = 3 THEN NULL"
            "      ELSE t.created_at + (r.round - 1) * interval '2 days' + (t.id %% 11) * interval '1 hour' END,"
            " CASE WHEN t.id %% 20 = 3 OR t.id %% 10 = 9 THEN NULL"
            "      ELSE t.created_at + (r.round - 1) * interval '2 days' + (t.id %% 150) * interval '1 hour' END,"
            " t.created_at + (r.round - 1) * interval '2 days' + interval '8 hours', 'none', NULL,"
            " CASE WHEN t.id %% 97 = 0 THEN t.created_at + interval '9 days' END"
            " FROM ticket t"
            f" CROSS JOIN LATERAL (SELECT ({depts})[1 + t.id %% 10] AS code"
            f"   UNION ALL SELECT ({depts})[1 + (t.id + 3) %% 10] WHERE t.id %% 5 = 0) d"
            " CROSS JOIN LATERAL (SELECT 1 AS round UNION ALL SELECT 2 WHERE t.round = 2) r"
        )
        # history: the returns and warnings the indicators read, plus filler events
        c.exec_driver_sql(
            "INSERT INTO ticketevent (ticket_id, suborder_id, at, actor, action, detail) "
            "SELECT s.ticket_id, s.id, s.dispatched_at + interval '3 hours', 'dept', "
            "'suborder_returned', '{\"reason\": \"非本部门职责\"}' FROM suborder s "
            "WHERE s.status = 'returned'"
        )
        c.exec_driver_sql(
            "INSERT INTO ticketevent (ticket_id, suborder_id, at, actor, action, detail) "
            "SELECT s.ticket_id, s.id, s.dispatched_at + interval '80 hours', 'system', 'warning', "
            "json_build_object('to', (ARRAY['blue','yellow','red'])[1 + s.id %% 3],"
            " 'step', 'finish', 'raised', true) FROM suborder s WHERE s.id %% 8 = 1"
        )
        c.exec_driver_sql(
            "INSERT INTO ticketevent (ticket_id, suborder_id, at, actor, action, detail) "
            "SELECT s.ticket_id, s.id, s.dispatched_at + interval '1 day', 'disp',"
            " 'extension_approved', json_build_object('previous_deadline',"
            " to_char(s.deadline_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'))"
            " FROM suborder s WHERE s.extension_until IS NOT NULL"
        )
        for action, offset in (("created", 0), ("dispatched", 1), ("suborder_accepted", 2)):
            c.exec_driver_sql(
                "INSERT INTO ticketevent (ticket_id, suborder_id, at, actor, action, detail) "
                f"SELECT t.id, NULL, t.created_at + interval '{offset} minutes', 'agent', "
                f"'{action}', '{{}}' FROM ticket t"
            )
        c.exec_driver_sql(
            "INSERT INTO evaluation (ticket_id, round, process, timeliness, result, overall,"
            " submitted_by, source, channel, superseded, created_at) "
            "SELECT t.id, 1, v.o, v.o, v.o, v.o, 'public', 'submitter', 'link', false,"
            " t.created_at + interval '7 days' FROM ticket t CROSS JOIN LATERAL (SELECT"
            " (ARRAY['satisfied','basically_satisfied','unsatisfied'])[1 + t.id %% 3] AS o) v"
            " WHERE t.id %% 5 < 3 AND t.id %% 20 <> 3"
        )
        for seq, table in (("ticket_id_seq", "ticket"), ("suborder_id_seq", "suborder")):
            c.exec_driver_sql(f"SELECT setval('{seq}', (SELECT max(id) FROM {table}))")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for table in ("ticket", "suborder", "ticketevent", "evaluation"):
            c.exec_driver_sql(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - t0


def _ratio(out: dict[str, object]) -> float:
    a, b = out["assess_ms"], out["baseline_grouped_count_ms"]
    assert isinstance(a, float) and isinstance(b, float)
    return round(a / max(b, 0.1), 1)


def ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def measure(url: str, tickets: int, settings: Settings) -> dict[str, object]:
    engine = make_engine(url)
    out: dict[str, object] = {"tickets": tickets, "load_s": round(load(engine, tickets), 1)}
    period = parse_period(settings, "2027-01")
    with engine.connect() as c:
        out["suborders"] = c.exec_driver_sql("SELECT count(*) FROM suborder").scalar()
        out["events"] = c.exec_driver_sql("SELECT count(*) FROM ticketevent").scalar()
        t0 = time.perf_counter()
        rows = c.execute(
            sa.text(
                "SELECT department_code, count(*) FROM suborder WHERE dispatched_at >= :a"
                " AND dispatched_at < :b GROUP BY department_code"
            ),
            {"a": period.start, "b": period.end},
        ).all()
        out["baseline_grouped_count_ms"] = ms(t0)
        out["month_suborders"] = sum(n for _, n in rows)
    running = period.end - timedelta(hours=1)  # January still running: computed live
    closed = period.end + timedelta(days=1)  # January closed: read from the month cache
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        result = assess(s, settings, period, now=running)
    out["assess_ms"] = ms(t0)
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        assess(s, settings, period, now=running)
    out["assess_again_ms"] = ms(t0)
    out["volume_total"] = int(result.city["volume"].den)
    out["top"] = {"department": result.rows[0].code, "score": result.rows[0].score}
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        cold = department_portrait(s, settings, period, DEPTS[1], now=closed)
    out["portrait_cold_ms"] = ms(t0)
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        out["kept_months"] = keep_months(s, settings, cold.to_keep)
    out["keep_ms"] = ms(t0)
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        warm = department_portrait(s, settings, period, DEPTS[1], now=closed)
    out["portrait_warm_ms"] = ms(t0)
    assert warm.result.cached and not warm.to_keep and warm.trend == cold.trend
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        cached = assess(s, settings, period, now=closed)
    out["cached_assess_ms"] = ms(t0)
    assert cached.cached and [r.score for r in cached.rows] == [r.score for r in result.rows]
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        got = department_row(s, settings, period, DEPTS[1], now=running)
    out["department_live_ms"] = ms(t0)
    assert got is not None and got[0].score == result.row(DEPTS[1]).score  # type: ignore[union-attr]
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        traced = indicator_rows(s, settings, period, DEPTS[1], "finish_on_time", limit=200)
    out["drill_down_ms"] = ms(t0)
    out["drill_down_rows"] = len(traced)
    t0 = time.perf_counter()
    with session_scope(engine, read_only=True) as s:
        deep = indicator_rows(
            s, settings, period, DEPTS[1], "finish_on_time", limit=200, offset=10_000
        )
    out["drill_down_deep_ms"] = ms(t0)
    out["drill_down_deep_rows"] = len(deep)
    t0 = time.perf_counter()
    out["recompute"] = recompute_month(engine, settings, period.key, now=closed)
    out["recompute_ms"] = ms(t0)
    out["ratio"] = _ratio(out)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "var")
        name = f"bench_assess_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(a.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(a.pg_url).set(database=name).render_as_string(False)
        try:
            upgrade(url)
            figures = {"postgresql": measure(url, a.tickets, settings)}
        finally:
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
