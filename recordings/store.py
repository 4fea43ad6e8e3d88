"""The recordings store: import what Asterisk wrote, keep one checked copy, purge by policy.

Import never touches the original: it is read twice (probe + checksum), copied to a temporary name
beside the destination, checked again and renamed into place, so a crash leaves either nothing or a
complete file. Dedupe is by (sha256, the PBX's own id of the file): the spool sweep and the bridge
at call end may both import a recording, and that must yield one row. The PBX id is the Uniqueid in
a MixMonitor file name or a voicemail's msg_id; `call_id` is the call the recording belongs to (the
bridge's Linkedid when the call is known, else that same PBX id).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.loader import load_yaml
from config.settings import Settings
from recordings.asterisk import parse_monitor_name, parse_voicemail_txt
from recordings.audio import AudioError, AudioInfo, probe
from recordings.models import Recording, RecordingKind, utcnow

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class StoreError(RuntimeError):
    """The store itself failed (disk, checksum mismatch after copy); the original is untouched."""


@dataclass
class ImportResult:
    recording: Recording
    created: bool  # False: this content for this call was already stored


def policy(settings: Settings) -> dict[str, Any]:
    return load_yaml(settings, "recordings.yaml")


def store_root(settings: Settings) -> Path:
    root = Path(policy(settings).get("store", {}).get("root", "recordings"))
    return root if root.is_absolute() else settings.data_dir / root


def sha256_file(path: str | Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def retention_until(settings: Settings, kind: str, made_at: datetime) -> datetime | None:
    days = policy(settings).get("retention_days", {}).get(kind)
    return None if days is None else made_at + timedelta(days=int(days))


def absolute_path(settings: Settings, rec: Recording) -> Path:
    """The stored file; refuses any row whose path would escape the store root."""
    root = store_root(settings).resolve()
    p = (root / rec.path).resolve()
    if root not in p.parents:
        raise StoreError(f"recording {rec.id}: path escapes the store root")
    return p


def _relative_name(
    settings: Settings, kind: str, call_id: str | None, sha: str, made_at: datetime
) -> str:
    local = made_at.replace(tzinfo=UTC).astimezone(ZoneInfo(settings.timezone))
    stem = f"{kind}-{_SAFE.sub('_', call_id) if call_id else 'nocall'}-{sha[:12]}.wav"
    return f"{local:%Y/%m/%d}/{stem}"


def _copy_checked(src: Path, dest: Path, sha: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with src.open("rb") as fi, tmp.open("wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 20)
            fo.flush()
            os.fsync(fo.fileno())
        if sha256_file(tmp) != sha:
            raise StoreError(
                f"{src}: copy does not match the source checksum (changed while copying?)"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def import_file(
    session: Session,
    settings: Settings,
    src: str | Path,
    *,
    kind: str | RecordingKind,
    call_id: str | None = None,
    ticket_id: int | None = None,
    caller_phone: str | None = None,
    agent: str | None = None,
    made_at: datetime | None = None,
    meta: dict[str, Any] | None = None,
    dedupe_id: str | None = None,
) -> ImportResult:
    """Probe, checksum, dedupe, copy, and add the row (flushed, not committed: caller's transaction).

    `dedupe_id` (default: call_id) names the file on the PBX side; the same bytes under the same
    dedupe id are one recording whichever call id the importer knew. Raises AudioError (bad audio,
    original untouched) or StoreError.
    """
    kind = RecordingKind(kind).value
    src = Path(src)
    info: AudioInfo = probe(src, max_seconds=settings.max_audio_seconds)
    sha = sha256_file(src)
    key = f"{sha}:{(dedupe_id if dedupe_id is not None else call_id) or ''}"
    existing = session.exec(select(Recording).where(Recording.dedupe_key == key)).first()
    if existing is not None:
        return ImportResult(existing, False)

    made_at = made_at or utcnow()
    rel = _relative_name(settings, kind, call_id, sha, made_at)
    dest = store_root(settings) / rel
    if not (dest.exists() and sha256_file(dest) == sha):
        _copy_checked(src, dest, sha)

    rec = Recording(
        kind=kind,
        call_id=call_id,
        ticket_id=ticket_id,
        dedupe_key=key,
        path=rel,
        source_path=str(src.resolve()),
        duration_s=info.duration_s,
        format=info.format,
        codec=info.codec,
        sample_rate=info.sample_rate,
        channels=info.channels,
        bytes=info.bytes,
        sha256=sha,
        caller_phone=caller_phone,
        agent=agent,
        meta=meta or {},
        created_at=made_at,
        expires_at=retention_until(settings, kind, made_at),
    )
    try:
        with session.begin_nested():  # a concurrent importer may win the unique dedupe_key
            session.add(rec)
    except IntegrityError:
        winner = session.exec(select(Recording).where(Recording.dedupe_key == key)).first()
        if winner is None:
            raise
        return ImportResult(winner, False)
    return ImportResult(rec, True)


def import_voicemail(
    session: Session,
    settings: Settings,
    wav: str | Path,
    *,
    call_id: str | None = None,
    ticket_id: int | None = None,
) -> ImportResult:
    """A voicemail from app_voicemail's spool (msgNNNN.wav + msgNNNN.txt beside it).

    Dedupe is on the message's msg_id from the .txt whenever there is one, so the sweep and the
    bridge store one row whatever call id they knew. `call_id` is the call's Linkedid when the
    bridge matched the message to its call (the voicemail ticket is then keyed by the call, as the
    bridge's callback task is); without it the msg_id stands in.
    """
    wav = Path(wav)
    txt = wav.with_suffix(".txt")
    info = parse_voicemail_txt(txt) if txt.exists() else None
    meta: dict[str, Any] = {}
    if info:
        meta = {
            k: info.extra[k]
            for k in ("origmailbox", "context", "exten", "msg_id", "callerchan", "duration")
            if k in info.extra
        }
        if info.caller_name:
            meta["caller_name"] = info.caller_name
    msg_id = info.call_id if info else None
    return import_file(
        session,
        settings,
        wav,
        kind=RecordingKind.voicemail,
        call_id=call_id or msg_id,
        ticket_id=ticket_id,
        caller_phone=info.caller_number if info else None,
        made_at=info.made_at if info else None,
        meta=meta,
        dedupe_id=msg_id or call_id,
    )


def import_monitor(
    session: Session,
    settings: Settings,
    wav: str | Path,
    *,
    call_id: str | None = None,
    ticket_id: int | None = None,
    agent: str | None = None,
) -> ImportResult:
    """A MixMonitor recording; caller/time come from the dialplan's file name. Dedupe is on the
    Uniqueid in that name; `call_id` (the call's Linkedid) defaults to it."""
    info = parse_monitor_name(wav, settings.timezone)
    return import_file(
        session,
        settings,
        wav,
        kind=RecordingKind.call,
        call_id=call_id or info.call_id,
        ticket_id=ticket_id,
        caller_phone=info.caller_number,
        agent=agent,
        made_at=info.made_at,
        meta={"uniqueid": info.call_id} if info.call_id else None,
        dedupe_id=info.call_id or call_id,
    )


def imported_sources(session: Session, paths: list[str]) -> set[str]:
    """Which of these source paths (resolved, as import stores them) are already in the store."""
    found: set[str] = set()
    for i in range(0, len(paths), 500):
        batch = paths[i : i + 500]
        found.update(
            p
            for (p,) in session.execute(
                sa.select(col(Recording.source_path)).where(col(Recording.source_path).in_(batch))
            )
            if p
        )
    return found


def scan_spool(
    session: Session, settings: Settings, folder: str | Path, *, kind: str | RecordingKind
) -> tuple[list[ImportResult], list[AudioError]]:
    """Import every WAV in a spool folder (idempotent: already-stored files dedupe).

    Bad files are reported, not raised, so one broken recording does not block the others.
    """
    results: list[ImportResult] = []
    errors: list[AudioError] = []
    for wav in sorted(Path(folder).rglob("*")):
        if wav.suffix.lower() != ".wav" or not wav.is_file():
            continue
        try:
            if RecordingKind(kind) is RecordingKind.voicemail:
                results.append(import_voicemail(session, settings, wav))
            else:
                results.append(import_monitor(session, settings, wav))
        except AudioError as e:
            errors.append(e)
    return results, errors


def purge_expired(
    session: Session, settings: Settings, *, now: datetime | None = None
) -> list[int]:
    """Delete files past retention; keep rows (deleted_at). Returns the purged recording ids."""
    now = now or utcnow()
    keep_open = bool(policy(settings).get("keep_while_ticket_open", True))
    rows = session.exec(
        select(Recording).where(
            Recording.deleted_at.is_(None),  # type: ignore[union-attr]
            Recording.expires_at.is_not(None),  # type: ignore[union-attr]
            Recording.expires_at <= now,  # type: ignore[operator]
        )
    ).all()
    open_tickets: set[int] = set()
    if keep_open:
        ids = {r.ticket_id for r in rows if r.ticket_id is not None}
        if ids:
            ticket = sa.table("ticket", sa.column("id"), sa.column("status"))
            open_tickets = {
                tid
                for (tid,) in session.execute(
                    sa.select(ticket.c.id).where(ticket.c.id.in_(ids), ticket.c.status != "closed")
                )
            }
    purged: list[int] = []
    for rec in rows:
        if rec.ticket_id in open_tickets:
            continue
        absolute_path(settings, rec).unlink(missing_ok=True)
        rec.deleted_at = now
        session.add(rec)
        purged.append(rec.id)  # type: ignore[arg-type]
    session.flush()
    return purged
