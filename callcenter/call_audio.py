"""A finished call's audio onto its ticket: MixMonitor recordings and voicemails → store → ASR.

Two moments, one set of rules:
- at call end, inside persist_call's transaction (`file_call_audio`): the call's MixMonitor files
  and its voicemail are imported when they are readable and complete, and queued for transcription;
- the sweep (callcenter/spool_sweep.py, every spool.sweep_interval_s in the bridge process, or
  `callcenter recordings sweep`): files that were not there yet (slow NFS, a bridge that was down),
  files no call claims (imported on their own after spool.orphan_after_s), voicemail calls still
  waiting for their ticket, and retention (recordings.purge_expired).

One voicemail, one ticket. With ASR on and the spool readable, the bridge does not file a voicemail
call's ticket itself: the transcription job files it (the caller's words classify it) under the
call's Linkedid, which is also the key of the bridge's callback task, so ticket, callback task and
call record meet. The sweep then links the call record to that ticket, or, after
spool.voicemail_ticket_grace_s without one (no model, a failed job, a message the PBX never saved),
files the ticket without text so no caller is lost; a transcript that arrives later attaches to it.
Without ASR or without a spool the bridge files the ticket at call end, as before.

A voicemail is matched to its call by the channel app_voicemail names in msgNNNN.txt (callerchan)
and its origtime within the call ± spool.match_window_s; caller number + time when callerchan is
missing. A MixMonitor file is matched by the name the dialplan gave it (MIXMONITOR_FILENAME).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlmodel import Session, select

from callcenter.models import CallRecord
from config.loader import load_yaml
from config.settings import AsteriskServer, Settings
from recordings import (
    AudioError,
    PbxFile,
    Recording,
    StoreError,
    import_monitor,
    import_voicemail,
    parse_voicemail_txt,
    probe,
)
from ticketing import Role, Ticket, User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpoolPolicy:
    sweep_interval_s: float = 15
    quiet_s: float = 20
    lookback_hours: float = 48
    match_window_s: float = 300
    orphan_after_s: float = 3600
    voicemail_ticket_grace_s: float = 600
    purge_interval_s: float = 3600


def spool_policy(settings: Settings) -> SpoolPolicy:
    raw = (load_yaml(settings, "recordings.yaml") or {}).get("spool") or {}
    known = SpoolPolicy.__dataclass_fields__
    return SpoolPolicy(**{k: float(v) for k, v in raw.items() if k in known})


def server_config(settings: Settings, name: str) -> AsteriskServer | None:
    return next((a for a in settings.asterisk if a.name == name), None)


def asr_enabled(settings: Settings) -> bool:
    return settings.asr_model_path is not None


def defers_voicemail_ticket(settings: Settings, server_name: str) -> bool:
    """The transcription job files the voicemail ticket (see the module docstring)."""
    server = server_config(settings, server_name)
    return bool(server and server.spool_dir and asr_enabled(settings))


def local_path(server: AsteriskServer, pbx_path: str) -> Path | None:
    """Where a file the PBX names (MIXMONITOR_FILENAME) is readable here; None outside the spool."""
    if not server.spool_dir or not pbx_path:
        return None
    p = PurePosixPath(pbx_path)
    try:
        rel = p.relative_to(PurePosixPath(server.pbx_spool_dir))
    except ValueError:
        rel = PurePosixPath("monitor") / p.name
    if ".." in rel.parts or rel.is_absolute():
        return None
    return Path(server.spool_dir) / rel


def epoch(dt: datetime | None) -> float | None:
    return None if dt is None else (dt - datetime(1970, 1, 1)).total_seconds()


def _digits(s: str | None) -> str:
    return "".join(c for c in (s or "") if c.isdigit())[-11:]


@dataclass
class CallView:
    """What matching needs of a call, from the bridge's record or a stored CallRecord."""

    call_id: str
    channels: list[str]
    started: float
    ended: float
    caller: str

    @classmethod
    def of_row(cls, row: CallRecord) -> CallView:
        started = epoch(row.started_at) or 0.0
        return cls(
            row.call_id,
            list((row.extra or {}).get("channels") or []),
            started,
            epoch(row.ended_at) or started,
            row.caller_phone or "",
        )


def voicemail_matches(call: CallView, vm: PbxFile, window_s: float) -> bool:
    made = epoch(vm.made_at)
    if made is None or not (call.started - window_s <= made <= call.ended + window_s):
        return False
    chan = (vm.extra or {}).get("callerchan")
    if chan:
        return chan in call.channels
    return bool(_digits(vm.caller_number)) and _digits(vm.caller_number) == _digits(call.caller)


def spool_files(root: Path, pattern: str, newer_than: float, older_than: float) -> list[Path]:
    """Regular files under root matching pattern whose mtime lies in (newer_than, older_than)."""
    if not root.is_dir():
        return []
    out = []
    for p in root.rglob(pattern):
        try:
            st = p.stat()
        except OSError:
            continue
        if p.is_file() and newer_than < st.st_mtime < older_than:
            out.append(p)
    return sorted(out)


def voicemail_wav(txt: Path) -> Path | None:
    for suffix in (".wav", ".WAV"):
        wav = txt.with_suffix(suffix)
        if wav.is_file():
            return wav
    return None


def find_voicemail(
    server: AsteriskServer, call: CallView, policy: SpoolPolicy
) -> tuple[Path, PbxFile] | None:
    """The message this call left, if app_voicemail has written it (its .txt is written last)."""
    if not server.spool_dir:
        return None
    since = call.started - policy.match_window_s
    for txt in spool_files(Path(server.spool_dir) / "voicemail", "msg*.txt", since, float("inf")):
        try:
            vm = parse_voicemail_txt(txt)
        except (OSError, ValueError):
            continue
        wav = voicemail_wav(txt)
        if wav is not None and voicemail_matches(call, vm, policy.match_window_s):
            return wav, vm
    return None


# ---- imports in the caller's transaction ---------------------------------------------------------


def _agent_username(session: Session, row: CallRecord) -> str | None:
    """The agent's login, for playback rights: the one agent whose display name is the queue
    member's name (the PBX knows members by name, the console by username)."""
    if not row.agent_name:
        return None
    users = session.exec(
        select(User.username).where(
            User.display_name == row.agent_name, User.role == Role.agent.value
        )
    ).all()
    return users[0] if len(users) == 1 else None


def _after_import(
    session: Session, settings: Settings, rec: Recording, row: CallRecord
) -> Recording:
    """Claim a recording for its call (it may have been stored earlier as an orphan), link the
    call's ticket, and queue the transcription (once: the outbox row is unique per recording)."""
    from asr import link_recording, request_transcription

    if rec.call_id != row.call_id and rec.ticket_id is None:
        rec.call_id = row.call_id
        session.add(rec)
    if rec.agent is None and rec.kind == "call" and (agent := _agent_username(session, row)):
        rec.agent = agent  # stored earlier as an orphan: the call now says who took it
        session.add(rec)
    if row.ticket_id is not None and rec.ticket_id is None:
        link_recording(session, settings, rec.id, row.ticket_id)  # type: ignore[arg-type]
    elif row.ticket_id is None and rec.ticket_id is not None:
        link_call_ticket(session, row, rec.ticket_id)
    if asr_enabled(settings):
        request_transcription(session, settings, rec.id)  # type: ignore[arg-type]
    return rec


def import_call_monitor(
    session: Session, settings: Settings, path: Path, row: CallRecord
) -> Recording:
    res = import_monitor(
        session,
        settings,
        path,
        call_id=row.call_id,
        ticket_id=row.ticket_id,
        agent=_agent_username(session, row),
    )
    return _after_import(session, settings, res.recording, row)


def import_call_voicemail(
    session: Session, settings: Settings, wav: Path, row: CallRecord
) -> Recording:
    res = import_voicemail(session, settings, wav, call_id=row.call_id, ticket_id=row.ticket_id)
    rec = _after_import(session, settings, res.recording, row)
    extra = dict(row.extra or {})
    extra["voicemail_recording_id"] = rec.id
    row.extra = extra
    session.add(row)
    return rec


def link_call_ticket(session: Session, row: CallRecord, ticket_id: int) -> None:
    t = session.get(Ticket, ticket_id)
    row.ticket_id, row.ticket_number = ticket_id, t.number if t else None
    extra = dict(row.extra or {})
    extra.pop("awaiting_voicemail_ticket", None)
    row.extra = extra
    session.add(row)


def _ready(path: Path, quiet_s: float, now: float) -> bool:
    """Complete enough to import now: a finalised WAV header, or untouched for quiet_s."""
    try:
        if probe(path).finalised:
            return True
    except AudioError:
        pass  # not a complete WAV yet, or never will be: the import says which, once it is quiet
    return now - path.stat().st_mtime >= quiet_s


def file_call_audio(
    session: Session, settings: Settings, row: CallRecord, rec: dict[str, Any]
) -> None:
    """At call end: import what the PBX has finished writing; the sweep takes the rest.

    Nothing here may hold up the call record: bad audio, an unreadable spool (NFS away, a name
    too long for the filesystem from a hostile caller id) or a full store is noted on the record
    and left to the sweep, each file in its own savepoint."""
    server = server_config(settings, row.server)
    if server is None or not server.spool_dir:
        return
    policy = spool_policy(settings)
    now = time.time()
    errors: list[dict[str, str]] = []

    def attempt(name: str, work: Callable[[], object]) -> None:
        try:
            with session.begin_nested():
                work()
        except AudioError as e:
            errors.append({"file": name[:120], "code": e.code, "message": e.message})
        except (OSError, StoreError) as e:
            errors.append({"file": name[:120], "code": "unreadable", "message": str(e)[:200]})

    for pbx_path in rec.get("recordings") or ([rec["recording"]] if rec.get("recording") else []):
        path = local_path(server, pbx_path)
        if path is None:
            continue

        def monitor(path: Path = path) -> None:
            if path.is_file() and _ready(path, policy.quiet_s, now):
                import_call_monitor(session, settings, path, row)

        attempt(path.name, monitor)
    if row.disposition == "voicemail":

        def voicemail() -> None:
            found = find_voicemail(server, CallView.of_row(row), policy)
            if found is not None:
                import_call_voicemail(session, settings, found[0], row)

        attempt("voicemail", voicemail)
    if errors:
        extra = dict(row.extra or {})
        extra["audio_errors"] = errors[:10]
        row.extra = extra
        session.add(row)
        log.warning("call %s: %d recording(s) rejected: %s", row.call_id, len(errors), errors[:3])
