"""§13 scan cost at scale: 1,000,000 open sub-orders on PostgreSQL and SQLite, beside a bare
indexed count of the same rows measured in the same run.

Figures (one JSON line last), per database:
- load_s: generating the rows in SQL (tickets with 10 accepted sub-orders each, nothing due)
- baseline_count_ms: SELECT count(*) of the open sub-orders on the sla_next_at index (bare)
- idle_round_ms: an incremental round (ticketing.sla_scan.scan_round) when nothing is due
- incremental_1000_ms: a round in which 1,000 sub-orders have come due and each turns blue
  (each raises a "warning" event, a 催办 escalation and its SMS outbox row, and re-evaluates its
  ticket)
- reeval_ms_p50 / p95: re-evaluation on one state change (ticketing.sla_clocks.touch on a
  sub-order and its ticket, what the lifecycle runs after every move)
- full_rows, full_s, full_rows_per_s, full_1m_s_estimate: a full re-evaluation
  (ticketing.sla_scan.full_scan's work) over --full-rows sub-orders, and the linear estimate for
  1,000,000 (the full scan is only needed after the rules change; the scheduler runs rounds)

Targets (issue 11): full scan <= 5 s on PostgreSQL, incremental round with 1,000 due changes
<= 200 ms, re-evaluation on one state change <= 5 ms.
Usage: python bench/sla.py [--rows 1000000] [--full-rows 100000] [--db sqlite,postgresql]
                           [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.schema import upgrade  # noqa: E402
from config.database import make_engine, session_scope  # noqa: E402
from config.settings import Settings  # noqa: E402
from ticketing.departments import sync_departments  # noqa: E402
from ticketing.models import SubOrder, Ticket, utcnow  # noqa: E402
from ticketing.sla_clocks import touch  # noqa: E402
from ticketing.sla_scan import scan_round  # noqa: E402

PER_TICKET = 10
DEPTS = ("SCJG", "SWJ", "RSJ", "ZJJ", "ZRZY", "FGJ", "ZWFW", "STHJ", "GAJ", "JXJ")


def _ts(dialect: str, dt: datetime) -> object:
    return dt.replace(tzinfo=UTC) if dialect == "postgresql" else dt


def load(engine: sa.Engine, rows: int, now: datetime) -> float:
    """Tickets and their accepted sub-orders, generated in SQL: nothing due for weeks."""
    dialect = engine.dialect.name
    tickets = rows // PER_TICKET
    created = now - timedelta(hours=1)
    due = now + timedelta(days=30)
    later = now + timedelta(days=20)  # the next instant a level can change
    p = {
        "n": tickets,
        "created": _ts(dialect, created),
        "due": _ts(dialect, due),
        "later": _ts(dialect, later),
    }
    series = (
        "SELECT g AS x FROM generate_series(1, :n) g"
        if dialect == "postgresql"
        else "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < :n) "
        "SELECT x FROM s"
    )
    depts = " UNION ALL ".join(f"SELECT '{c}' AS code" for c in DEPTS)
    t0 = time.perf_counter()
    with engine.begin() as c:
        if dialect == "sqlite":  # the search index is not what is measured here
            for trig in (
                c.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='ticket'"
                )
                .scalars()
                .all()
            ):
                c.exec_driver_sql(f"DROP TRIGGER {trig}")
        c.execute(
            sa.text(
                "INSERT INTO ticket (number, channel, title, content, category, urgency, status,"
                " warning, channel_data, round, reopen_count, created_at, updated_at,"
                " deadline_at, sla_basis, dispatch_mode, sla_next_at) "
                f"SELECT 'B' || x, 'web', '园区道路照明', '企业反映园区道路照明长期损坏',"
                f" 'enterprise', 'general', 'dispatched', 'none', '{{}}', 1, 0, :created,"
                f" :created, :due, '30 days', 'manual', :later FROM ({series}) q"
            ),
            p,
        )
        c.execute(
            sa.text(
                "INSERT INTO suborder (ticket_id, department_code, round, status, deadline_at,"
                " dispatched_by, dispatched_at, accepted_at, warning, warning_step,"
                " sla_next_at) SELECT t.id, d.code, 1, 'accepted', :due, 'bench', :created,"
                f" :created, 'none', 'finish', :later FROM ticket t CROSS JOIN ({depts}) d"
            ),
            {k: v for k, v in p.items() if k != "n"},
        )
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE suborder")
            c.exec_driver_sql("VACUUM ANALYZE ticket")
    else:
        with engine.begin() as c:
            c.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


def ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def measure(url: str, rows: int, full_rows: int, settings: Settings) -> dict[str, object]:
    engine = make_engine(url)
    now = utcnow()
    with session_scope(engine) as s:
        sync_departments(s, settings)
    out: dict[str, object] = {"rows": rows, "load_s": round(load(engine, rows, now), 1)}
    dialect = engine.dialect.name
    # bare baseline: the same open rows counted on the same index, nothing else
    t0 = time.perf_counter()
    with engine.connect() as c:
        n = c.execute(
            sa.text("SELECT count(*) FROM suborder WHERE sla_next_at IS NOT NULL")
        ).scalar()
    out["baseline_count_ms"] = ms(t0)
    out["open_suborders"] = n
    # an incremental round with nothing due
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        res = scan_round(s, settings, now=now)
    out["idle_round_ms"] = ms(t0)
    assert res.checked == 0, res.as_dict()
    # 1,000 sub-orders come due and turn blue (2/3 of their time used)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "UPDATE suborder SET sla_next_at = :due_now, dispatched_at = :start,"
                " accepted_at = :start, deadline_at = :end WHERE id IN"
                " (SELECT id FROM suborder ORDER BY id LIMIT 1000)"
            ),
            {
                "due_now": _ts(dialect, now - timedelta(seconds=1)),
                "start": _ts(dialect, now - timedelta(hours=7)),
                "end": _ts(dialect, now + timedelta(hours=3)),
            },
        )
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        res = scan_round(s, settings, now=now)
    out["incremental_1000_ms"] = ms(t0)
    out["incremental_raised"] = dict(res.raised)
    # re-evaluation on one state change, as the lifecycle runs it
    samples = []
    with session_scope(engine) as s:
        ids = list(s.exec(sa.select(SubOrder.id).order_by(SubOrder.id.desc()).limit(50)))
    for sid in ids:
        with session_scope(engine) as s:
            so = s.get(SubOrder, sid)
            t = s.get(Ticket, so.ticket_id)
            t0 = time.perf_counter()
            touch(s, t, so)
            s.flush()
            samples.append((time.perf_counter() - t0) * 1000)
            s.rollback()
    samples.sort()
    out["reeval_ms_p50"] = round(statistics.median(samples), 2)
    out["reeval_ms_p95"] = round(samples[int(len(samples) * 0.95) - 1], 2)
    # full re-evaluation over full_rows sub-orders (and their tickets)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "UPDATE suborder SET sla_next_at = :now WHERE id IN"
                " (SELECT id FROM suborder ORDER BY id DESC LIMIT :k)"
            ),
            {"now": _ts(dialect, now), "k": full_rows},
        )
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        res = scan_round(s, settings, now=now, batch=5000)
    full = time.perf_counter() - t0
    out["full_rows"] = res.suborders
    out["full_s"] = round(full, 2)
    out["full_rows_per_s"] = round(res.suborders / full) if full else None
    out["full_1m_s_estimate"] = round(full * 1_000_000 / max(res.suborders, 1), 1)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--full-rows", type=int, default=100_000)
    ap.add_argument("--db", default="postgresql,sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    figures: dict[str, object] = {"rows": a.rows}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "var")
        for db in a.db.split(","):
            if db == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                upgrade(url)
                figures["sqlite"] = measure(url, a.rows, a.full_rows, settings)
            elif db == "postgresql":
                name = f"bench_sla_{uuid.uuid4().hex[:8]}"
                admin = sa.create_engine(a.pg_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as c:
                    c.exec_driver_sql(f'CREATE DATABASE "{name}"')
                url = sa.make_url(a.pg_url).set(database=name).render_as_string(False)
                try:
                    upgrade(url)
                    figures["postgresql"] = measure(url, a.rows, a.full_rows, settings)
                finally:
                    with admin.connect() as c:
                        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    admin.dispose()
            print(json.dumps({db: figures.get(db)}, ensure_ascii=False), file=sys.stderr)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
