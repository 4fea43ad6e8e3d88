"""A daemon thread that does one piece of database upkeep every `interval_s` until stopped.

Shared by SQLite's WAL checkpointer (config.wal) and PostgreSQL's GIN list cleaner (config.gin):
both keep index or log maintenance off the request path, and the app stops whichever it started.
"""

from __future__ import annotations

import threading
from typing import Self


class UpkeepThread:
    """Subclasses set `name` and implement `_run`, looping on `self._stop.wait(self.interval_s)`."""

    name = "upkeep"

    def __init__(self, *, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0  # rounds run (for tests and curiosity; only this thread writes it)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
