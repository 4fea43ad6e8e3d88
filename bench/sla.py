"""§13 scan cost at scale: 1,000,000 open sub-orders on PostgreSQL and SQLite, beside a bare
indexed count of the same rows measured in the same run.

Figures (one JSON line last), per database:
- load_s: generating the rows in SQL (tickets with 10 accepted sub-orders each, nothing due)
- baseline_count_ms: SELECT count(*) of the open sub-orders on the sla_next_at index (bare)
- idle_round_ms: an incremental round (ticketing.sla_scan.scan_round) when nothing is due
- incremental_1000_ms: a round in which 1,000 sub-orders have come due and each turns blue
  (each raises a "warning" event, a 催办 escalation and its SMS outbox row, and re-evaluates its
  ticket)
- *_cpu_ms / full_cpu_s: the same, in this process's CPU time (the client's share: on a loaded
  machine the wall figures include waiting for a core and for the database server)
- reeval_ms_p50 / p95: re-evaluation on one state change (ticketing.sla_clocks.touch on a
  sub-order and its ticket, what the lifecycle runs after every move)
- full_s, full_raised: the full scan (ticketing.sla_scan.full_scan) over every open sub-order and
  ticket, set-based on the boundaries stored at each clock's start, with --rise sub-orders whose
  yellow boundary has passed (found, raised, recorded and escalated in the same run)

Targets (issue 11): full scan <= 5 s on PostgreSQL, incremental round with 1,000 due changes
<= 200 ms, re-evaluation on one state change <= 5 ms.
Usage: python bench/sla.py [--rows 1000000] [--rise 1000] [--db sqlite,postgresql]
                           [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                           [--at 10:00]  (the local time of day the scan runs at)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
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
from ticketing.escalation import quiet_until  # noqa: E402
from ticketing.models import SubOrder, Ticket, utcnow  # noqa: E402
from ticketing.sla_clocks import Facts, bound_values, judge, touch  # noqa: E402
from ticketing.sla_scan import full_scan, scan_round  # noqa: E402

PER_TICKET = 10
DEPTS = ("SCJG", "SWJ", "RSJ", "ZJJ", "ZRZY", "FGJ", "ZWFW", "STHJ", "GAJ", "JXJ")


def _ts(dialect: str, dt: datetime) -> object:
    return dt.replace(tzinfo=UTC) if dialect == "postgresql" else dt


def _template(settings: Settings, created: datetime, due: datetime, kind: str) -> dict[str, object]:
    """The clock every generated sub-order (accepted an hour ago) or ticket (ten departments)
    has, general and due in 30 days: its boundaries and next instant, computed by the clocks'
    own code as at the clock's start."""
    facts = Facts(
        kind=kind,
        id=0,
        ticket_id=0,
        round=1,
        urgency="general",
        category="enterprise",
        step="finish" if kind == "suborder" else "ticket",
        start=created,
        due=due,
        moved_at=created,
        stored_level="none",
        stored_step=None,
        cross_department=kind == "ticket",
    )
    out = judge(settings, facts, created, moved=True)
    assert out.bounds is not None and out.next_at is not None
    return {"next": out.next_at, **bound_values(out)}


def _params(dialect: str, clock: dict[str, object]) -> dict[str, object]:
    return {
        k: _ts(dialect, v) if isinstance(v, datetime) else v
        for k, v in clock.items()
        if k.startswith("sla_")
    }


def load(engine: sa.Engine, rows: int, now: datetime, settings: Settings) -> float:
    """Tickets and their accepted sub-orders, generated in SQL: nothing due for days."""
    dialect = engine.dialect.name
    tickets = rows // PER_TICKET
    created = now - timedelta(hours=1)
    due = now + timedelta(days=30)
    clock = _template(settings, created, due, "suborder")
    tclock = _template(settings, created, due, "ticket")
    assert clock["next"] > now and tclock["next"] > now  # type: ignore[operator]
    p = {
        "n": tickets,
        "created": _ts(dialect, created),
        "due": _ts(dialect, due),
        "later": _ts(dialect, clock["next"]),  # type: ignore[arg-type]
        **_params(dialect, clock),
    }
    tp = {
        "n": tickets,
        "created": _ts(dialect, created),
        "due": _ts(dialect, due),
        "tlater": _ts(dialect, tclock["next"]),  # type: ignore[arg-type]
        **_params(dialect, tclock),
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
                " deadline_at, sla_basis, dispatch_mode, sla_next_at, sla_blue_at,"
                " sla_yellow_at, sla_red_at, sla_overdue_at, sla_bounds_step) "
                f"SELECT 'B' || x, 'web', '园区道路照明', '企业反映园区道路照明长期损坏',"
                f" 'enterprise', 'general', 'dispatched', 'none', '{{}}', 1, 0, :created,"
                f" :created, :due, '30 days', 'manual', :tlater, :sla_blue_at, :sla_yellow_at,"
                f" :sla_red_at, :sla_overdue_at, :sla_bounds_step FROM ({series}) q"
            ),
            tp,
        )
        c.execute(
            sa.text(
                "INSERT INTO suborder (ticket_id, department_code, round, status, deadline_at,"
                " dispatched_by, dispatched_at, accepted_at, warning, warning_step,"
                " sla_next_at, sla_blue_at, sla_yellow_at, sla_red_at, sla_overdue_at,"
                " sla_bounds_step) SELECT t.id, d.code, 1, 'accepted', :due, 'bench', :created,"
                " :created, 'none', 'finish', :later, :sla_blue_at, :sla_yellow_at,"
                " :sla_red_at, :sla_overdue_at, :sla_bounds_step"
                f" FROM ticket t CROSS JOIN ({depts}) d"
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


def bench_now(at: str, settings: Settings) -> datetime:
    """The scan's `now`: today at local time `at` (HH:MM), or the clock's now for "now".

    The default, 10:00, lies outside the SMS quiet hours (sla.yaml, 22:00-08:00 local), where
    each blue reminder also queues its SMS: the dearer round, and the same one at any hour the
    bench is run (in quiet hours the reminders are held and the round is cheaper)."""
    if at == "now":
        return utcnow()
    from zoneinfo import ZoneInfo

    hour, minute = (int(x) for x in at.split(":"))
    zone = ZoneInfo(settings.timezone)
    local = datetime.now(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return local.astimezone(UTC).replace(tzinfo=None)


def measure(url: str, rows: int, rise: int, settings: Settings, now: datetime) -> dict[str, object]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        sync_departments(s, settings)
    out: dict[str, object] = {"rows": rows, "load_s": round(load(engine, rows, now, settings), 1)}
    dialect = engine.dialect.name
    # bare baseline: the same open rows counted on the same index, nothing else
    t0 = time.perf_counter()
    with engine.connect() as c:
        n = c.execute(
            sa.text("SELECT count(*) FROM suborder WHERE sla_next_at IS NOT NULL")
        ).scalar()
    out["baseline_count_ms"] = ms(t0)
    out["open_suborders"] = n
    # The scan runs in the RQ worker, which freezes its start-up heap (callcenter/run.py, after
    # preload_worker): a round's collections scan only its own objects. Do the same here, so a
    # full collection over what loading the rows left behind does not land in a measured round.
    gc.collect()
    gc.freeze()
    # an incremental round with nothing due
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        res = scan_round(s, settings, now=now)
    out["idle_round_ms"] = ms(t0)
    assert res.checked == 0, res.as_dict()
    # 1,000 sub-orders come due and turn blue: their blue boundary has just passed
    with engine.begin() as c:
        c.execute(
            sa.text(
                "UPDATE suborder SET sla_next_at = :due_now, sla_blue_at = :due_now WHERE id IN"
                " (SELECT id FROM suborder ORDER BY id LIMIT 1000)"
            ),
            {"due_now": _ts(dialect, now - timedelta(seconds=1))},
        )
    t0, c0 = time.perf_counter(), time.process_time()
    with session_scope(engine) as s:
        res = scan_round(s, settings, now=now)
    out["incremental_1000_ms"] = ms(t0)
    out["incremental_1000_cpu_ms"] = round((time.process_time() - c0) * 1000, 2)
    out["incremental_raised"] = dict(res.raised)
    # In the SMS quiet hours blue reminders are held, not queued: a cheaper round (see bench_now)
    out["sms_quiet_hours"] = quiet_until(settings, now) is not None
    # re-evaluation on one state change, as the lifecycle runs it
    samples: list[float] = []
    cpu: list[float] = []
    with session_scope(engine) as s:
        ids = list(s.exec(sa.select(SubOrder.id).order_by(SubOrder.id.desc()).limit(50)))
    for sid in ids:
        with session_scope(engine) as s:
            so = s.get(SubOrder, sid)
            t = s.get(Ticket, so.ticket_id)
            t0, c0 = time.perf_counter(), time.process_time()
            touch(s, t, so)
            s.flush()
            samples.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            s.rollback()
    samples.sort()
    out["reeval_ms_p50"] = round(statistics.median(samples), 2)
    out["reeval_ms_p95"] = round(samples[int(len(samples) * 0.95) - 1], 2)
    out["reeval_cpu_ms_p50"] = round(statistics.median(cpu), 2)
    # the full scan over every open sub-order and ticket, with --rise rows whose yellow
    # boundary has passed (as after a change of the rules): found, raised and escalated
    with engine.begin() as c:
        c.execute(
            sa.text(
                "UPDATE suborder SET sla_yellow_at = :past WHERE id IN"
                " (SELECT id FROM suborder ORDER BY id DESC LIMIT :k)"
            ),
            {"past": _ts(dialect, now - timedelta(seconds=1)), "k": rise},
        )
    t0, c0 = time.perf_counter(), time.process_time()
    with session_scope(engine) as s:
        res = full_scan(s, settings, now=now)
    out["full_s"] = round(time.perf_counter() - t0, 2)
    out["full_cpu_s"] = round(time.process_time() - c0, 2)
    out["full_raised"] = dict(res.raised)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rise", type=int, default=1000)
    ap.add_argument("--db", default="postgresql,sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument(
        "--at",
        default="10:00",
        help="local time of day the scan runs at (HH:MM, or 'now'); 10:00 is outside the SMS "
        "quiet hours",
    )
    a = ap.parse_args()
    figures: dict[str, object] = {"rows": a.rows, "load_average": list(os.getloadavg())}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "var")
        now = bench_now(a.at, settings)
        figures["now"] = now.isoformat()
        for db in a.db.split(","):
            if db == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                upgrade(url)
                figures["sqlite"] = measure(url, a.rows, a.rise, settings, now)
            elif db == "postgresql":
                name = f"bench_sla_{uuid.uuid4().hex[:8]}"
                admin = sa.create_engine(a.pg_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as c:
                    c.exec_driver_sql(f'CREATE DATABASE "{name}"')
                url = sa.make_url(a.pg_url).set(database=name).render_as_string(False)
                try:
                    upgrade(url)
                    figures["postgresql"] = measure(url, a.rows, a.rise, settings, now)
                finally:
                    with admin.connect() as c:
                        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    admin.dispose()
            print(json.dumps({db: figures.get(db)}, ensure_ascii=False), file=sys.stderr)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
