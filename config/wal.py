"""SQLite WAL checkpoints from a thread of their own, so no writer's COMMIT has to run one.

Why: by default SQLite checkpoints inside the COMMIT that takes the write-ahead log past 1,000
pages: that transaction copies the log into the database file and syncs it. Under sustained
intake that was every ~6th group-committed batch of the web's intake writer, 15-18 ms on top of
a ~1 ms COMMIT, and every request in that batch and queued behind it waited for it (the p99 of
ticket creation). Here a thread runs a PASSIVE checkpoint every `interval_s`: it never blocks
readers or writers and gives up on pages a reader still needs (the next round gets them), and
sqlite3 releases the GIL while it copies and syncs. The engine the thread serves keeps a large
automatic threshold as a backstop (`make_engine(..., wal_autocheckpoint=BACKSTOP_PAGES)`),
so a stopped checkpointer means larger checkpoints, never an unbounded log.
"""

from __future__ import annotations

import sqlite3

import structlog
from sqlalchemy.engine import Engine

from config.upkeep import UpkeepThread

log = structlog.get_logger("config.wal")

BACKSTOP_PAGES = 20_000  # ~80 MB of log with 4 KiB pages: only reached if this thread stalls
INTERVAL_S = 0.2


class WalCheckpointer(UpkeepThread):
    """`WalCheckpointer(path).start()` ... `.stop()`; one per process per database file."""

    name = "wal-checkpoint"

    def __init__(self, path: str, *, interval_s: float = INTERVAL_S) -> None:
        super().__init__(interval_s=interval_s)
        self.path = path

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:  # the app's own engine will report the real problem
            log.warning("wal_checkpointer_not_started", error=str(e))
            return
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.rounds += 1
                except sqlite3.Error as e:  # e.g. the disk full: say so, try again next round
                    log.warning("wal_checkpoint_failed", error=str(e))
        finally:
            conn.close()


def start_for(engine: Engine) -> WalCheckpointer | None:
    """A running checkpointer for a file SQLite engine (made with a raised
    `wal_autocheckpoint`); None for PostgreSQL or an in-memory database."""
    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return WalCheckpointer(db).start()
