"""A short-lived per-process read cache of the department table, for intake's auto-dispatch.

Saves a query per intake. A commit in this process that changes a Department through the ORM
(sync_departments, the admin pages) clears the snapshot at once (the session listeners below); a
change made by another process bumps the "departments" stamp (ticketing.admin_settings), which
this cache compares at most every DEPARTMENT_CACHE_TTL_S (one primary-key read) before reusing
its snapshot. Entries are transient copies, never attached to any session.
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

from ticketing.admin_settings import DEPARTMENTS, stored_version
from ticketing.models import Department

DEPARTMENT_CACHE_TTL_S = 1.0  # how often the stamp is compared (not how long a change waits)
# bind -> (next stamp check, stamp version, snapshot)
_dept_cache: weakref.WeakKeyDictionary[Any, tuple[float, int, dict[str, Department]]] = (
    weakref.WeakKeyDictionary()
)
_dept_cache_lock = threading.Lock()
_FIELDS = ("id", "code", "name", "head_name", "head_phone", "handoff_url", "active")


def cached_departments(session: Session, codes: Sequence[str]) -> dict[str, Department]:
    """Departments (by code, of those named) from a per-process snapshot, re-read when the
    departments' change stamp moved (compared at most every DEPARTMENT_CACHE_TTL_S)."""
    snapshot = _snapshot(session)
    return {c: snapshot[c] for c in codes if c in snapshot}


def all_cached_departments(session: Session) -> dict[str, Department]:
    """Every department (by code) from the same snapshot: the registry of names a conduct
    complaint's text is read against (ticketing.conduct)."""
    return dict(_snapshot(session))


def _snapshot(session: Session) -> dict[str, Department]:
    bind = session.get_bind()
    now = time.monotonic()
    with _dept_cache_lock:
        hit = _dept_cache.get(bind)
    if hit is None or hit[0] <= now:
        version = stored_version(session, DEPARTMENTS)
        if hit is None or hit[1] != version:
            rows = session.exec(select(Department)).all()
            snapshot = {d.code: Department(**{f: getattr(d, f) for f in _FIELDS}) for d in rows}
        else:
            snapshot = hit[2]
        hit = (now + DEPARTMENT_CACHE_TTL_S, version, snapshot)
        with _dept_cache_lock:
            _dept_cache[bind] = hit
    return hit[2]


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
