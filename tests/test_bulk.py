"""config.bulk on real SQLite and PostgreSQL: columns None in every row of a call written as NULL
(not bound per row), a unique column's taken values skipped and not returned."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from config.bulk import insert_rows, update_rows
from config.database import NaiveUTCDateTime


def _table() -> sa.Table:
    return sa.Table(
        f"t_bulk_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(20), unique=True),
        sa.Column("note", sa.String(20)),
        sa.Column("at", NaiveUTCDateTime),
        sa.Column("data", sa.JSON),
    )


AT = datetime(2026, 10, 1, 8, 30, 0, 5)


def test_insert_and_update_with_columns_null_in_every_row(engine):
    t = _table()
    t.create(engine)
    try:
        with Session(engine) as s:
            rows = [{"key": f"k{i}", "note": None, "at": None, "data": {"i": i}} for i in range(3)]
            ids = insert_rows(s, t, rows, returning="id")
            assert len(ids) == 3
            # one row with a value, the others None: bound per row as before
            insert_rows(s, t, [{"key": "k3", "note": "有", "at": AT, "data": None}])
            update_rows(s, t, "id", [{"id": i, "note": None, "at": AT, "data": None} for i in ids])
            update_rows(s, t, "key", [{"key": "k3", "note": None, "at": None, "data": [1]}])
            s.commit()
            got = s.execute(sa.select(t.c.key, t.c.note, t.c.at, t.c.data).order_by(t.c.key))
            assert [tuple(r) for r in got] == [
                ("k0", None, AT, None),
                ("k1", None, AT, None),
                ("k2", None, AT, None),
                ("k3", None, None, [1]),
            ]
    finally:
        t.drop(engine)


def test_insert_skips_taken_unique_values_and_returns_the_new_rows(engine):
    t = _table()
    t.create(engine)
    try:
        with Session(engine) as s:
            first = insert_rows(
                s,
                t,
                [{"key": "a", "note": None, "at": AT, "data": None}],
                returning=("id", "key"),
                unique="key",
            )
            assert [k for _id, k in first] == ["a"]
            again = insert_rows(
                s,
                t,
                [
                    {"key": "a", "note": "重复", "at": None, "data": None},
                    {"key": "b", "note": None, "at": None, "data": None},
                ],
                returning=("id", "key"),
                unique="key",
            )
            assert [k for _id, k in again] == ["b"] and again[0][0] != first[0][0]
            assert (
                insert_rows(
                    s, t, [{"key": "b", "note": None, "at": None, "data": None}], unique="key"
                )
                == []
            )
            s.commit()
            got = s.execute(sa.select(t.c.key, t.c.note).order_by(t.c.key)).all()
            assert [tuple(r) for r in got] == [("a", None), ("b", None)]
    finally:
        t.drop(engine)
