"""Access-checked playback: who may listen (policy in recordings.yaml), byte ranges, the audit log.

Access (config `playback:`; the defaults):
  admin, supervisor, leader   every recording
  agent                       calls they handled (Recording.agent == username); voicemails too when
                              `agent_voicemail` is true (agents return voicemail callbacks)
  handler                     only recordings whose ticket has a sub-order for the handler's
                              department; anything else is reported as NOT FOUND (404, like the
                              ticket API), so a handler cannot probe which recordings exist
  dispatcher and other roles  refused unless the policy lists them
Every request, allowed or refused, is written to PlaybackLog. The same policy governs a recording's
transcript wherever it is shown as text (the ticket's history, agent_console.access): a role
refused the audio gets the event without the text, and every read is logged (what="transcript").

This module imports only config and recordings (layering): the department check reads the
`suborder` table through SQL Core, not ticketing's models.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from config.settings import Settings
from recordings.models import PlaybackLog, Recording
from recordings.store import StoreError, absolute_path, policy

log = structlog.get_logger("recordings.playback")


class Principal(Protocol):
    username: str
    role: str
    department_code: str | None


class PlaybackDenied(Exception):
    """status 403 (not allowed) or 404 (not allowed and must not learn it exists)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int, message: str) -> None:
        super().__init__(message)
        self.size = size
        self.message = message


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


_RANGE_RE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """RFC 9110 single byte range. None = serve the whole file (no header, another unit, or
    several ranges, which a server may ignore). RangeNotSatisfiable for malformed or out-of-file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    m = _RANGE_RE.match(spec)
    if not m or (not m[1] and not m[2]):
        raise RangeNotSatisfiable(size, f"无效的 Range 请求头：{header!r}")
    if not m[1]:  # suffix: the last N bytes
        n = int(m[2])
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(size, "请求的范围为空")
        return ByteRange(max(0, size - n), size - 1)
    start = int(m[1])
    end = int(m[2]) if m[2] else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(size, f"请求范围 {start}-{m[2]} 超出文件大小 {size}")
    return ByteRange(start, min(end, size - 1))


def _department_has_ticket(session: Session, ticket_id: int | None, dept: str | None) -> bool:
    if ticket_id is None or not dept:
        return False
    sub = sa.table("suborder", sa.column("ticket_id"), sa.column("department_code"))
    row = session.execute(
        sa.select(sa.literal(1))
        .select_from(sub)
        .where(sub.c.ticket_id == ticket_id, sub.c.department_code == dept)
        .limit(1)
    ).first()
    return row is not None


def check_access(session: Session, settings: Settings, rec: Recording, user: Principal) -> None:
    rules: dict[str, Any] = policy(settings).get("playback", {})
    mode = rules.get(user.role)
    if mode == "all":
        return
    if mode == "own_calls":
        if rec.kind == "call" and rec.agent and rec.agent == user.username:
            return
        if rec.kind == "voicemail" and rules.get("agent_voicemail", False):
            return
        raise PlaybackDenied(403, "只能收听本人接听的通话录音")
    if mode == "department":
        if _department_has_ticket(session, rec.ticket_id, getattr(user, "department_code", None)):
            return
        raise PlaybackDenied(404, "录音不存在")
    raise PlaybackDenied(403, "当前角色无权收听录音")


def log_playback(
    session: Session,
    rec_id: int,
    user: Principal,
    status: int,
    rng: ByteRange | None = None,
    client: str | None = None,
    what: str = "audio",
) -> PlaybackLog:
    row = PlaybackLog(
        what=what,
        recording_id=rec_id,
        username=user.username,
        role=user.role,
        status_code=status,
        range_start=rng.start if rng else None,
        range_end=rng.end if rng else None,
        client=(client or "")[:64] or None,
    )
    session.add(row)
    return row


def open_for_playback(settings: Settings, rec: Recording) -> Path:
    if rec.deleted_at is not None:
        raise PlaybackDenied(410, "录音已按保留期限删除")
    try:
        p = absolute_path(settings, rec)
    except StoreError:
        # a row naming a file outside the store: never served, reported like a missing file
        log.warning("recording_path_outside_store", recording_id=rec.id)
        raise PlaybackDenied(404, "录音文件缺失或路径无效") from None
    if not p.exists():
        raise PlaybackDenied(404, "录音文件缺失")
    return p


def iter_file(path: Path, start: int, length: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            data = f.read(min(chunk, left))
            if not data:
                return
            left -= len(data)
            yield data
