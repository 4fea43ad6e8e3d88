"""Many rows in one statement: multi-row inserts and keyed updates for the scan rounds.

On PostgreSQL each column travels as one array parameter (INSERT ... SELECT FROM unnest(...),
UPDATE ... FROM unnest(...)): one statement and one round trip however many rows, where an
executemany costs a round of client work per row and a multi-row VALUES a parse of thousands of
placeholders. Elsewhere (SQLite, in-process) the plain executemany, which is already cheap there.
Values are what the column's Python type holds: naive datetimes are UTC (config.database), dicts
and lists go to JSON columns. A column that is None in every row of a call is written as a NULL
in the statement itself, not bound once per row (an escalation's note, due date, acknowledgement).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Table, bindparam, null
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session


def _pg_type(table: Table, name: str, conn: Connection) -> str:
    col_type = table.c[name].type
    return str(col_type.compile(dialect=conn.dialect))


def _pg_value(v: Any, is_json: bool) -> Any:
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    if is_json and v is not None:
        return json.dumps(v, ensure_ascii=False)
    return v


def _arrays(table: Table, cols: list[str], rows: list[dict[str, Any]]) -> tuple[Any, ...]:
    out = []
    for c in cols:
        is_json = isinstance(table.c[c].type, JSON)
        out.append([_pg_value(r[c], is_json) for r in rows])
    return tuple(out)


def _split(cols: list[str], rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The columns with a value in some row, and those None in every row (at least one of the
    former is kept, so a statement always has something to bind)."""
    first, n = rows[0], len(rows)
    nulls = [
        c for c in cols if first[c] is None and list(map(itemgetter(c), rows)).count(None) == n
    ]
    if len(nulls) == len(cols):
        nulls = nulls[1:]
    return [c for c in cols if c not in nulls], nulls


def insert_rows(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    returning: str | tuple[str, ...] | None = None,
    unique: str | None = None,
) -> list[Any]:
    """Insert rows (dicts with the same keys); with `returning`, that column of the new rows
    (a tuple of names: those columns, as rows), in no particular order. unique: a column with a
    unique index; a row whose value there is taken (by an earlier or a concurrent transaction)
    is skipped, not inserted and not returned (ON CONFLICT DO NOTHING: SQLite >= 3.35)."""
    if not rows:
        return []
    conn = session.connection()
    cols, nulls = _split(list(rows[0]), rows)
    if conn.dialect.name != "postgresql":
        stmt: Any = table.insert()
        if unique is not None:
            stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=[unique])
        if nulls:
            stmt = stmt.values({c: null() for c in nulls})
            rows = [{c: r[c] for c in cols} for r in rows]
        if returning is None:
            conn.execute(stmt, rows)
            return []
        if isinstance(returning, str):
            return list(conn.execute(stmt.returning(table.c[returning]), rows).scalars())
        return list(conn.execute(stmt.returning(*(table.c[c] for c in returning)), rows).all())
    names = ", ".join(f'"{c}"' for c in (*cols, *nulls))
    arrays = ", ".join(f"%b::{_pg_type(table, c, conn)}[]" for c in cols)
    values = ", ".join(
        [*(f'"{c}"' for c in cols), *(f"NULL::{_pg_type(table, c, conn)}" for c in nulls)]
    )
    alias = ", ".join(f'"{c}"' for c in cols)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) SELECT {values} FROM unnest({arrays}) AS v({alias})'
    )
    if unique is not None:
        sql += f' ON CONFLICT ("{unique}") DO NOTHING'
    if returning is not None:
        wanted = (returning,) if isinstance(returning, str) else returning
        sql += " RETURNING " + ", ".join(f'"{c}"' for c in wanted)
    result = conn.exec_driver_sql(sql, _arrays(table, cols, rows))
    if returning is None:
        return []
    return list(result.scalars()) if isinstance(returning, str) else list(result.all())


def update_rows(session: Session, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """UPDATE table SET <the other keys> WHERE <key> = row[key], for each row (same keys)."""
    if not rows:
        return
    conn = session.connection()
    cols, nulls = _split([c for c in rows[0] if c != key], rows)
    if conn.dialect.name != "postgresql":
        stmt = (
            table.update()
            .where(table.c[key] == bindparam(f"k_{key}"))
            .values({c: bindparam(f"k_{c}") for c in cols})
        )
        if nulls:
            stmt = stmt.values({c: null() for c in nulls})
        conn.execute(stmt, [{f"k_{c}": r[c] for c in (key, *cols)} for r in rows])
        return
    allc = [key, *cols]
    arrays = ", ".join(f"%b::{_pg_type(table, c, conn)}[]" for c in allc)
    alias = ", ".join(f'"{c}"' for c in allc)
    sets = ", ".join([*(f'"{c}" = v."{c}"' for c in cols), *(f'"{c}" = NULL' for c in nulls)])
    # the key's own ANY(...) too: without it the planner hashes the whole table against the
    # array (it cannot see how few rows the array holds); with it, an index scan of these keys
    key_type = _pg_type(table, key, conn)
    sql = (
        f'UPDATE "{table.name}" AS t SET {sets} FROM unnest({arrays}) AS v({alias}) '
        f'WHERE t."{key}" = v."{key}" AND t."{key}" = ANY(%b::{key_type}[])'
    )
    values = _arrays(table, allc, rows)
    conn.exec_driver_sql(sql, (*values, values[0]))
