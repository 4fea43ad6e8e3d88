"""Many rows in one statement: multi-row inserts and keyed updates for the scan rounds.

On PostgreSQL each column travels as one array parameter (INSERT ... SELECT FROM unnest(...),
UPDATE ... FROM unnest(...)): one statement and one round trip however many rows, where an
executemany costs a round of client work per row and a multi-row VALUES a parse of thousands of
placeholders. Elsewhere (SQLite, in-process) the plain executemany, which is already cheap there.
Values are what the column's Python type holds: naive datetimes are UTC (config.database), dicts
and lists go to JSON columns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Table, bindparam
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


def insert_rows(
    session: Session, table: Table, rows: list[dict[str, Any]], *, returning: str | None = None
) -> list[Any]:
    """Insert rows (dicts with the same keys); with `returning`, that column of the new rows
    (in no particular order)."""
    if not rows:
        return []
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        if returning is None:
            conn.execute(table.insert(), rows)
            return []
        return list(conn.execute(table.insert().returning(table.c[returning]), rows).scalars())
    cols = list(rows[0])
    names = ", ".join(f'"{c}"' for c in cols)
    arrays = ", ".join(f"%b::{_pg_type(table, c, conn)}[]" for c in cols)
    sql = f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays})'
    if returning is not None:
        sql += f' RETURNING "{returning}"'
    result = conn.exec_driver_sql(sql, _arrays(table, cols, rows))
    return list(result.scalars()) if returning is not None else []


def update_rows(session: Session, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """UPDATE table SET <the other keys> WHERE <key> = row[key], for each row (same keys)."""
    if not rows:
        return
    conn = session.connection()
    cols = [c for c in rows[0] if c != key]
    if conn.dialect.name != "postgresql":
        stmt = (
            table.update()
            .where(table.c[key] == bindparam(f"k_{key}"))
            .values({c: bindparam(f"k_{c}") for c in cols})
        )
        conn.execute(stmt, [{f"k_{c}": v for c, v in r.items()} for r in rows])
        return
    allc = [key, *cols]
    arrays = ", ".join(f"%b::{_pg_type(table, c, conn)}[]" for c in allc)
    alias = ", ".join(f'"{c}"' for c in allc)
    sets = ", ".join(f'"{c}" = v."{c}"' for c in cols)
    # the key's own ANY(...) too: without it the planner hashes the whole table against the
    # array (it cannot see how few rows the array holds); with it, an index scan of these keys
    key_type = _pg_type(table, key, conn)
    sql = (
        f'UPDATE "{table.name}" AS t SET {sets} FROM unnest({arrays}) AS v({alias}) '
        f'WHERE t."{key}" = v."{key}" AND t."{key}" = ANY(%b::{key_type}[])'
    )
    values = _arrays(table, allc, rows)
    conn.exec_driver_sql(sql, (*values, values[0]))
