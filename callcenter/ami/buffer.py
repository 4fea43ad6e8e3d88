"""Append-only on-disk journal of finished calls not yet stored in the database.

Why: a call record must survive the DB being down *and* the bridge crashing meanwhile. Each
finished call is appended (and fsync'ed) before anything else happens to it; a `done` line is
appended once the DB has it. On start, every record without a `done` line is pending again.
Memory stays bounded: pending records are read back from disk in batches, never all held; the
file is compacted when everything in it is done, or when it grows past `compact_bytes`.
A torn last line (crash mid-write) is skipped and counted, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, path: Path, *, compact_bytes: int = 8 << 20) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.compact_bytes = compact_bytes
        self.corrupt_lines = 0
        self._lock = threading.Lock()
        self._repair_tail()
        self._pending_count = len(self._scan())

    def _repair_tail(self) -> None:
        """A crash mid-append leaves a line without its newline: end it, so the next entry
        starts on a line of its own (the torn line is then skipped as corrupt)."""
        try:
            with self.path.open("rb+") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
        except FileNotFoundError:
            return

    def _scan(self) -> dict[str, dict[str, Any]]:
        pending: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return pending
        corrupt = 0
        with self.path.open("r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                    op, key = entry["op"], entry["id"]
                except (ValueError, KeyError, TypeError):
                    corrupt += 1
                    continue
                if op == "put":
                    pending[key] = entry["data"]
                elif op == "done":
                    pending.pop(key, None)
        self.corrupt_lines = corrupt
        return pending

    def _write(self, entries: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def put(self, key: str, data: dict[str, Any]) -> None:
        self.put_many([(key, data)])

    def put_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        self._write([{"op": "put", "id": k, "data": d} for k, d in items])
        self._pending_count += len(items)

    def done(self, keys: list[str]) -> None:
        if not keys:
            return
        self._write([{"op": "done", "id": k} for k in keys])
        self._pending_count = max(0, self._pending_count - len(keys))
        self._maybe_compact()

    @property
    def dead_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".dead.jsonl")

    def bury(self, key: str, data: dict[str, Any], error: str) -> None:
        """A record the database refuses for good goes to the dead-letter file (kept for a person
        to look at and replay), so it stops blocking the records behind it."""
        line = json.dumps({"id": key, "error": error, "data": data}, ensure_ascii=False) + "\n"
        with self._lock, self.dead_path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.done([key])

    def pending(self, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        items = list(self._scan().items())
        self._pending_count = len(items)
        return items[:limit] if limit is not None else items

    @property
    def pending_count(self) -> int:
        return self._pending_count

    def _maybe_compact(self) -> None:
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return
            if self._pending_count and size < self.compact_bytes:
                return
            pending = self._scan()
            tmp = self.path.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for k, v in pending.items():
                    fh.write(json.dumps({"op": "put", "id": k, "data": v}, ensure_ascii=False))
                    fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._pending_count = len(pending)
