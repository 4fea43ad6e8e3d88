"""config.bulk on real databases: the rows a multi-row insert / keyed update stores are the rows
SQLAlchemy's own executemany stores (the SQLite driver-level path binds each value as its column
type does), and on SQLite a column's Python-side default still applies when the rows leave it
out (SQLAlchemy's executemany then)."""

from __future__ import annotations

from datetime import datetime

import pytest
from _loop_helpers import make_ticket, seed_departments
from sqlalchemy import select

import config.bulk as bulk
from config.database import session_scope
from ticketing.models import TicketEvent

EV = TicketEvent.__table__  # type: ignore[attr-defined]


@pytest.fixture
def tid(engine, settings) -> int:
    seed_departments(engine, settings)
    return make_ticket(engine, settings)


def _rows(tag: str, tid: int) -> list[dict]:
    return [
        {
            "ticket_id": tid,
            "suborder_id": None,
            "actor": tag,
            "action": "warning",
            "detail": {"to": "blue", "list": [1, "二"], "n": None},
            "at": datetime(2026, 1, 2, 3, 4, 5, 0 if i == 0 else 123),
        }
        for i in range(3)
    ]


def _stored(engine, tag: str) -> list[tuple]:
    with engine.connect() as c:
        return [
            tuple(r)
            for r in c.exec_driver_sql(
                "SELECT action, detail, at FROM ticketevent WHERE actor = ? ORDER BY id"
                if engine.dialect.name == "sqlite"
                else "SELECT action, detail::text, at FROM ticketevent WHERE actor = %s ORDER BY id",
                (tag,),
            ).all()
        ]


def test_inserted_and_updated_rows_match_sqlalchemys_executemany(engine, tid, monkeypatch):
    with session_scope(engine) as s:
        bulk.insert_rows(s, EV, _rows("fast", tid))
    with monkeypatch.context() as m:
        m.setattr(bulk, "_sqlite_direct", lambda *a, **k: False)
        with session_scope(engine) as s:
            bulk.insert_rows(s, EV, _rows("plain", tid))
    assert _stored(engine, "fast") == _stored(engine, "plain")
    assert len(_stored(engine, "fast")) == 3
    with engine.connect() as c:
        ids = {
            tag: [r[0] for r in c.execute(select(EV.c.id).where(EV.c.actor == tag))]
            for tag in ("fast", "plain")
        }
    new = {"at": datetime(2027, 1, 1), "detail": {"x": "é"}, "action": "moved"}
    with session_scope(engine) as s:
        bulk.update_rows(s, EV, "id", [{"id": i, **new} for i in ids["fast"]])
    with monkeypatch.context() as m:
        m.setattr(bulk, "_sqlite_direct", lambda *a, **k: False)
        with session_scope(engine) as s:
            bulk.update_rows(s, EV, "id", [{"id": i, **new} for i in ids["plain"]])
    assert _stored(engine, "fast") == _stored(engine, "plain")
    assert {r[0] for r in _stored(engine, "fast")} == {"moved"}


@pytest.mark.parametrize("with_at", [True, False])
def test_a_left_out_python_default_is_still_applied(engine, tid, with_at):
    if engine.dialect.name != "sqlite":
        pytest.skip("the PostgreSQL path's rows name every column (its unnest has no defaults)")
    rows = [{k: v for k, v in r.items() if with_at or k != "at"} for r in _rows("dflt", tid)]
    with session_scope(engine) as s:
        bulk.insert_rows(s, EV, rows)
    assert all(r[2] is not None for r in _stored(engine, "dflt"))
    with engine.connect() as c:
        assert bulk._sqlite_direct(EV, list(rows[0]), c, update=False) is with_at
