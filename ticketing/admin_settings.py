"""Settings the administrator edits in the workspace, kept in the database (table admin_setting).

The YAML files stay the seed of a fresh install and the fallback while nothing is stored. A value
read here is cached per process and per database; every write bumps the row's `version`, and each
process compares the versions at most every STAMP_CHECK_S seconds (one small query), so a change
made in the workspace reaches the IVR, the workers and every web process without a restart. A
commit in this process that writes a setting refreshes this process at once.

Readers that have only the Settings (the SLA clock, business hours, routing rules: their call
signatures stay as they were) reach the database through one small engine per database URL.
A database without the table yet (before the migration) reads as "nothing stored".
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from config.database import make_engine, readonly, utcnow
from config.settings import Settings
from ticketing.models import AdminSetting

log = logging.getLogger(__name__)

STAMP_CHECK_S = 1.0  # how stale another process's change may be seen here, at most

# keys in use (one place, so a typo is an AttributeError, not a silent miss)
BUSINESS_HOURS = "business_hours"
CALENDAR = "calendar"
ROUTING = "routing"
DEPARTMENTS = "departments"  # a bare stamp: the department table changed


@dataclass
class _Cache:
    checked_at: float = -1.0
    versions: dict[str, int] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


_lock = threading.Lock()
_caches: dict[str, _Cache] = {}
_engines: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    with _lock:
        eng = _engines.get(url)
        if eng is None:
            small = {} if url.startswith("sqlite") else {"pool_size": 2, "max_overflow": 2}
            eng = _engines[url] = readonly(make_engine(url, **small))
        return eng


def _no_database(url: str) -> bool:
    """A SQLite file not created yet (no deployment there): nothing to read, nothing to create."""
    if not url.startswith("sqlite"):
        return False
    path = url.split("///", 1)[-1]
    return bool(path) and path != ":memory:" and not Path(path).exists()


def _refresh(url: str, cache: _Cache, now: float) -> None:
    """Reload every setting whose version changed since the last look (the table is tiny)."""
    if _no_database(url):
        cache.values, cache.versions, cache.checked_at = {}, {}, now
        return
    try:
        with _engine(url).connect() as conn:
            rows = conn.execute(text("SELECT key, version FROM admin_setting")).all()
            versions = {str(k): int(v) for k, v in rows}
            stale = [k for k, v in versions.items() if cache.versions.get(k) != v]
            for key in stale:
                row = conn.execute(
                    text("SELECT value FROM admin_setting WHERE key = :k"), {"k": key}
                ).first()
                cache.values[key] = _json(row[0]) if row is not None else None
    except SQLAlchemyError as e:  # no table yet (before the migration): nothing stored
        log.debug("admin_setting unreadable (%s); using the YAML defaults", type(e).__name__)
        versions = {}
    for key in list(cache.values):
        if key not in versions:
            del cache.values[key]
    cache.versions = versions
    cache.checked_at = now


def _json(value: Any) -> Any:
    """A JSON column read through a plain text() query comes back as a string on SQLite."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def _cache_for(url: str) -> _Cache:
    now = time.monotonic()
    with _lock:
        cache = _caches.setdefault(url, _Cache())
        due = cache.checked_at < 0 or now - cache.checked_at >= STAMP_CHECK_S
    if due:
        fresh = _Cache(versions=dict(cache.versions), values=dict(cache.values))
        _refresh(url, fresh, now)
        with _lock:
            _caches[url] = cache = fresh
    return cache


def read_setting(settings: Settings, key: str) -> Any | None:
    """The stored value of `key` (None when nothing is stored), at most STAMP_CHECK_S old."""
    return _cache_for(settings.resolved_database_url).values.get(key)


def setting_version(settings: Settings, key: str) -> int:
    """The stored version of `key` (0 when nothing is stored): a cache key for derived values."""
    return _cache_for(settings.resolved_database_url).versions.get(key, 0)


def stored_version(session: Session, key: str) -> int:
    """The version as this session's transaction sees it (for caches keyed on a session's bind)."""
    row = session.get(AdminSetting, key)
    return row.version if row is not None else 0


def write_setting(session: Session, key: str, value: Any, by: str | None = None) -> int:
    """Store `value` under `key` in the caller's transaction; returns the new version."""
    row = session.get(AdminSetting, key)
    if row is None:
        row = AdminSetting(key=key, value=value, version=1, updated_by=by)
    else:
        row.value, row.version, row.updated_at, row.updated_by = (
            value,
            row.version + 1,
            utcnow(),
            by,
        )
    session.add(row)
    session.flush()
    session.info["_admin_settings_changed"] = True
    return row.version


def bump(session: Session, key: str, by: str | None = None) -> int:
    """Mark `key` changed (a stamp without a value, e.g. the department table was edited)."""
    row = session.get(AdminSetting, key)
    return write_setting(session, key, row.value if row is not None else None, by)


def stored_setting(session: Session, key: str) -> Any | None:
    """The value as this session sees it (the editing pages read their own writes)."""
    row = session.get(AdminSetting, key)
    return row.value if row is not None else None


def forget_cached_settings() -> None:
    """The next read in this process looks at the database again (tests, after a commit here)."""
    with _lock:
        for cache in _caches.values():
            cache.checked_at = -1.0


@event.listens_for(OrmSession, "after_commit")
def _settings_committed(session: OrmSession) -> None:
    if session.info.pop("_admin_settings_changed", False):
        forget_cached_settings()


@event.listens_for(OrmSession, "after_rollback")
def _settings_rolled_back(session: OrmSession) -> None:
    session.info.pop("_admin_settings_changed", None)
