"""PostgreSQL GIN pending lists flushed from a thread of their own, so no intake's INSERT has to.

Why: a GIN index with `fastupdate` (PostgreSQL's default) takes new entries into an unsorted
"pending list" and moves them into the index proper in bulk, either in (auto)vacuum or inside
the INSERT that takes the list past `gin_pending_list_limit` (4 MB). The ticket search indexes
(pg_trgm over title and content, migration 0002) collect ~200 trigrams per ticket, so under
sustained intake the list fills every few thousand tickets, and the unlucky INSERT spent 58-67 ms
flushing it: every request in that intake batch and queued behind it waited (measured with
bench/ticketing.py's open loop: the p99 of creation, 45-64 ms, max ~95 ms). Autovacuum does not
come often enough to help: it runs on an insert threshold of 20 % of the table.

Here a thread calls `gin_clean_pending_list` on every such index of the schema every
`interval_s`. It runs beside the writers (PostgreSQL lets inserts go on into the list while a
cleanup runs, and an INSERT finding a cleanup under way does not start its own), in autocommit,
on one connection of its own. The list's limit stays as the backstop: a stopped cleaner means the
INSERTs flush again, never an unbounded list.
"""

from __future__ import annotations

import contextlib

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from config.upkeep import UpkeepThread

log = structlog.get_logger("config.gin")

INTERVAL_S = 0.2

# GIN indexes of the current schema that keep a pending list (fastupdate is on unless an index
# says otherwise), found rather than named: config knows no schema of the packages above it.
_INDEXES = text(
    "SELECT c.oid::regclass::text FROM pg_class c "
    "JOIN pg_am a ON a.oid = c.relam "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'i' AND a.amname = 'gin' AND n.nspname = current_schema() "
    "AND NOT coalesce('fastupdate=off' = ANY (c.reloptions), false) "
    "ORDER BY 1"
)
_CLEAN = text("SELECT gin_clean_pending_list(CAST(:index AS regclass))")


class GinCleaner(UpkeepThread):
    """`GinCleaner(engine).start()` ... `.stop()`; one per process is plenty."""

    name = "gin-clean"

    def __init__(self, engine: Engine, *, interval_s: float = INTERVAL_S) -> None:
        super().__init__(interval_s=interval_s)
        self.engine = engine
        self.pages = 0  # pending-list pages moved into the indexes (only this thread writes it)

    def _run(self) -> None:
        conn: Connection | None = None
        indexes: list[str] = []
        failing = False  # say so once per outage, not five times a second
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    if conn is None:
                        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                        indexes = list(conn.execute(_INDEXES).scalars())
                        if not indexes:
                            return  # nothing to do in this schema (e.g. pg_trgm unavailable)
                    for index in indexes:
                        self.pages += int(conn.execute(_CLEAN, {"index": index}).scalar_one())
                    self.rounds += 1
                    if failing:
                        log.info("gin_clean_resumed")
                        failing = False
                except DBAPIError as e:
                    if _not_allowed(e):  # not the index's owner: the INSERTs keep flushing
                        log.warning("gin_clean_not_permitted", error=str(e.orig))
                        return
                    if not failing:  # the server away or restarting: reconnect next round
                        log.warning("gin_clean_failed", error=str(e.orig))
                        failing = True
                    _close(conn)
                    conn = None
                except SQLAlchemyError as e:
                    if not failing:
                        log.warning("gin_clean_failed", error=str(e))
                        failing = True
                    _close(conn)
                    conn = None
        finally:
            _close(conn)


def _not_allowed(e: DBAPIError) -> bool:
    return getattr(e.orig, "sqlstate", None) == "42501"  # insufficient_privilege


def _close(conn: Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(SQLAlchemyError):  # a dead connection's close
            conn.close()


def start_for(engine: Engine) -> GinCleaner | None:
    """A running cleaner for a PostgreSQL engine; None for any other database."""
    if engine.dialect.name != "postgresql":
        return None
    return GinCleaner(engine).start()
