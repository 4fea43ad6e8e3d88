"""Engine and session factory shared by every package that persists (ticketing, recordings)."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard, cast

from sqlalchemy import DateTime, TypeDecorator, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlmodel import Field, Session, create_engine

WRITER_WAIT_S = 30.0  # same patience as SQLite's busy_timeout


def make_engine(url: str, *, wal_autocheckpoint: int = 1000, **kw: Any) -> Engine:
    """SQLite gets WAL + a busy timeout so concurrent writers queue instead of failing.

    `wal_autocheckpoint` (pages; SQLite's default 1000) is raised by a process that checkpoints
    in the background instead (config.wal)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
            cur.close()

        # Let SQLAlchemy's BEGIN be real so writers take the lock up front (no upgrade deadlocks).
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _rec: Any) -> None:  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None

        # One writer at a time per process, handed over FIFO-ish by a lock instead of SQLite's
        # sleeping busy handler (which backs off up to 100 ms per retry: seconds of p99 under
        # load). Other processes still meet busy_timeout. A plain Lock (not RLock): the request
        # that begins may commit on another threadpool thread.
        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:  # pragma: no cover - trivial
            if conn.get_execution_options().get("readonly"):
                conn.exec_driver_sql("BEGIN")
                return
            if not writer.acquire(timeout=WRITER_WAIT_S):
                raise sa_exc.OperationalError(
                    "BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")
                )
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                writer.release()
                raise
            conn.info["_writer_lock"] = writer

        _release_writer_after_end(engine)
        return engine
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    return create_engine(url, **kw)


def _release_writer_after_end(engine: Engine) -> None:
    """Release the writer lock only once COMMIT/ROLLBACK has really ended the SQLite transaction.

    (ConnectionEvents.commit fires *before* the COMMIT, so the dialect's do_commit/do_rollback are
    wrapped instead; the pool's reset-on-return also goes through do_rollback, and a checkin of a
    connection that somehow still holds it, e.g. after invalidation, releases it too.)
    """
    dialect = engine.dialect

    def release(info: dict | None) -> None:
        lock = info.pop("_writer_lock", None) if info is not None else None
        if lock is not None:
            lock.release()

    def wrap(method: Any) -> Any:  # a bound dialect method, replaced below
        def wrapped(dbapi_conn: Any) -> None:
            try:
                method(dbapi_conn)
            finally:
                try:
                    info = dbapi_conn.info
                except (AttributeError, NotImplementedError):  # first-connect probe: no record
                    return
                release(info)

        return wrapped

    dialect.do_commit = wrap(dialect.do_commit)  # type: ignore[method-assign]
    dialect.do_rollback = wrap(dialect.do_rollback)  # type: ignore[method-assign]

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:  # pragma: no cover - defensive
        release(record.info)

    @event.listens_for(engine, "invalidate")
    def _invalidate(
        _dbapi_conn: Any, record: Any, _exc: Any
    ) -> None:  # pragma: no cover - defensive
        release(record.info)


def readonly(engine: Engine) -> Engine:
    """Same pool, but SQLite begins a plain deferred (shared) transaction: readers never queue."""
    return engine.execution_options(readonly=True)


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on error (nothing half-written)."""
    bind = readonly(engine) if read_only else engine
    with Session(bind, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


# ------------------------------------------------------------------ row ids
# The id columns' range (INTEGER on PostgreSQL). An id from a URL or a payload is checked against
# it before it reaches a query: a larger one is a DataError on PostgreSQL and an OverflowError
# (not a DBAPI error, so a 500) on SQLite.
MAX_ROW_ID = 2**31 - 1


def is_row_id(value: object) -> TypeGuard[int]:
    """A possible row id: an int (not a bool) in 1..MAX_ROW_ID."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ROW_ID


_ROW_ID_TEXT = re.compile(r"[0-9]{1,10}")


def parse_row_id(raw: object) -> int | None:
    """A row id from what a client sent (a URL segment, a form field), else None. ASCII digits
    only: str.isdigit() also takes "²" (int() refuses it: a 500) and "１２" (int() reads it)."""
    if is_row_id(raw):
        return raw
    if not isinstance(raw, str) or not _ROW_ID_TEXT.fullmatch(raw):
        return None
    n = int(raw)
    return n if is_row_id(n) else None


# ------------------------------------------------------------------ time columns
def utcnow() -> datetime:
    """The project's one clock convention: naive datetimes that mean UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class NaiveUTCDateTime(TypeDecorator):
    """Naive UTC in Python; timestamptz on PostgreSQL, DATETIME on SQLite.

    sqlmodel ≥ 0.0.50 maps `datetime` to a type that rejects naive values. Aware input is
    converted to UTC here, so a stray aware datetime is stored correctly rather than refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None and dialect.name != "postgresql":
            return value  # already the stored form (every intake binds several of these)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def bind_processor(self, dialect: Any) -> Any:
        """On SQLite a naive datetime goes straight to its stored text. The standard path (this
        class's process_bind_param, then SQLAlchemy's SQLite DATETIME %-formatting a dict of the
        parts) costs a few microseconds per value, and a scan round binds thousands (events,
        escalations, updates). isoformat with microseconds writes the same text, always
        "YYYY-MM-DD HH:MM:SS.ffffff" (tests/test_database_time.py holds them equal). Anything
        else (aware values, other types, other databases) takes the standard path."""
        standard = super().bind_processor(dialect)
        if dialect.name != "sqlite" or standard is None:
            return standard

        def process(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is None:
                return value.isoformat(" ", "microseconds")
            return standard(value)

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value


def UTCField(**kw: Any) -> Any:
    """A datetime model field stored as NaiveUTCDateTime."""
    return Field(sa_type=NaiveUTCDateTime, **kw)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE/DELETE matched (its result is a CursorResult; SQLAlchemy's types say Result)."""
    return cast("CursorResult[Any]", result).rowcount
