"""A short-lived per-process read cache of the department table, for intake's auto-dispatch.

Saves a query per intake. A commit in this process that changes a Department through the ORM
(sync_departments, the admin API) clears the snapshot at once (the session listeners below); a
change made by another process is seen within the TTL. Entries are transient copies, never
attached to any session.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from itertools import chain
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from ticketing.models import Department

DEPARTMENT_CACHE_TTL_S = 5.0
_dept_cache: weakref.WeakKeyDictionary[Any, tuple[float, dict[str, Department]]] = (
    weakref.WeakKeyDictionary()
)
_dept_cache_lock = threading.Lock()
_FIELDS = ("id", "code", "name", "head_name", "head_phone", "handoff_url", "active")


def cached_departments(session: Session, codes: Sequence[str]) -> dict[str, Department]:
    """Departments (by code, of those named) from a per-process snapshot (≤ TTL old)."""
    bind = session.get_bind()
    now = time.monotonic()
    with _dept_cache_lock:
        hit = _dept_cache.get(bind)
    if hit is None or hit[0] <= now:
        rows = session.exec(select(Department)).all()
        snapshot = {d.code: Department(**{f: getattr(d, f) for f in _FIELDS}) for d in rows}
        hit = (now + DEPARTMENT_CACHE_TTL_S, snapshot)
        with _dept_cache_lock:
            _dept_cache[bind] = hit
    return {c: hit[1][c] for c in codes if c in hit[1]}


def clear_department_cache() -> None:
    with _dept_cache_lock:
        _dept_cache.clear()


@event.listens_for(OrmSession, "before_flush")
def _note_department_change(session: OrmSession, _ctx: Any, _instances: Any) -> None:
    if any(isinstance(o, Department) for o in chain(session.new, session.dirty, session.deleted)):
        session.info["_departments_changed"] = True
        clear_department_cache()


@event.listens_for(OrmSession, "after_commit")
def _departments_committed(session: OrmSession) -> None:
    if session.info.pop("_departments_changed", False):
        clear_department_cache()


@event.listens_for(OrmSession, "after_rollback")
def _departments_rolled_back(session: OrmSession) -> None:
    if session.info.pop("_departments_changed", False):
        clear_department_cache()
