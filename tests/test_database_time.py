"""config.database's time column on real SQLite and PostgreSQL: naive UTC in and out, and on
SQLite the fast bind path writes exactly the text SQLAlchemy's own SQLite DATETIME writes (SQLite
compares these columns as text: `sla_next_at <= now` is only right if every writer agrees)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import DATETIME

from config.database import NaiveUTCDateTime

VALUES = [
    datetime(2026, 10, 1, 0, 0),  # no microseconds: still written with six digits
    datetime(2026, 10, 1, 8, 30, 15, 7),
    datetime(2026, 12, 31, 23, 59, 59, 999999),
    datetime(1, 1, 1),
    datetime(999, 5, 5, 5, 5, 5, 500000),
]
AWARE = datetime(2026, 10, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))  # 00:00 UTC


def _table() -> sa.Table:
    return sa.Table(
        f"t_time_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", NaiveUTCDateTime),
    )


def test_times_round_trip_as_naive_utc(engine):
    t = _table()
    t.create(engine)
    try:
        with engine.begin() as c:
            c.execute(t.insert(), [{"at": v} for v in VALUES])  # executemany
            c.execute(t.insert(), {"at": AWARE})  # one row, an aware value
            c.execute(t.insert(), {"at": None})
        with engine.connect() as c:
            got = c.execute(sa.select(t.c.at).order_by(t.c.id)).scalars().all()
            # a bound parameter compares the way the scans' `<= now` does
            later = c.execute(
                sa.select(sa.func.count()).where(t.c.at <= datetime(2026, 10, 1, 8, 30, 15, 7))
            ).scalar()
        assert got == [*VALUES, datetime(2026, 10, 1, 0, 0), None]
        assert all(v is None or v.tzinfo is None for v in got)
        assert later == 5  # 00:00, 08:30:15.000007, year 1, year 999, and the aware one
    finally:
        t.drop(engine)


def test_sqlite_stores_sqlalchemys_own_text(engine):
    if engine.dialect.name != "sqlite":
        return
    fast = NaiveUTCDateTime()._cached_bind_processor(engine.dialect)
    standard = DATETIME().bind_processor(engine.dialect)
    assert fast is not None and standard is not None
    for v in VALUES:
        assert fast(v) == standard(v)
    assert fast(AWARE) == standard(datetime(2026, 10, 1, 0, 0))
    t = _table()
    t.create(engine)
    try:
        with engine.begin() as c:
            c.execute(t.insert(), [{"at": v} for v in VALUES])
            stored = c.exec_driver_sql(f"SELECT at FROM {t.name} ORDER BY id").scalars().all()
        assert stored == [standard(v) for v in VALUES]
        assert stored[0] == "2026-10-01 00:00:00.000000"
    finally:
        t.drop(engine)
