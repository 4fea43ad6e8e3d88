"""The periodic pick-up of what the PBX wrote (see callcenter/call_audio.py for the rules).

Runs every spool.sweep_interval_s in the bridge process (one Sweeper per PBX) and as
`callcenter recordings sweep`: files the call-end import could not take yet, files no call claims
(stored on their own after spool.orphan_after_s), voicemail calls still waiting for their ticket,
and retention (recordings.purge_expired) every spool.purge_interval_s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from callcenter.call_audio import (
    CallView,
    asr_enabled,
    epoch,
    import_call_monitor,
    import_call_voicemail,
    link_call_ticket,
    spool_files,
    spool_policy,
    voicemail_matches,
    voicemail_wav,
)
from callcenter.models import CallRecord
from config.database import session_scope
from config.settings import AsteriskServer, Settings
from recordings import (
    AudioError,
    PbxFile,
    Recording,
    StoreError,
    import_monitor,
    import_voicemail,
    imported_sources,
    parse_voicemail_txt,
    purge_expired,
)
from ticketing import mask_phone

log = logging.getLogger(__name__)
# A file is written during its call, so its call started at most this long before the file's
# mtime: the calls a sweep loads to claim files are bounded by it, not by the whole lookback.
MAX_CALL_S = 6 * 3600


@dataclass
class SweepReport:
    imported: int = 0  # files claimed by their call
    orphans: int = 0  # files no call claimed, stored on their own
    linked: int = 0  # voicemail calls linked to the ticket their transcript filed
    filed: int = 0  # voicemail calls given a ticket without text after the grace period
    purged: int = 0
    empty: int = 0  # zero-length/frameless files (an abandoned call's MixMonitor): normal
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "orphans": self.orphans,
            "linked": self.linked,
            "filed": self.filed,
            "purged": self.purged,
            "empty": self.empty,
            "errors": len(self.errors),
        }


def _mtime(p: Path, default: float) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return default


class Sweeper:
    """The periodic pick-up for one PBX. Keeps, per instance, the files it found broken (by path,
    size and mtime) so a bad file is reported once, not every sweep; a file that changes is
    looked at again."""

    def __init__(self, settings: Settings, server: AsteriskServer) -> None:
        self.settings = settings
        self.server = server
        self.policy = spool_policy(settings)
        self._bad: set[tuple[str, int, float]] = set()
        self._last_purge = 0.0

    def run_once(self, engine: Engine, *, now: float | None = None) -> SweepReport:
        now = time.time() if now is None else now
        report = SweepReport()
        if self.server.spool_dir:
            self._sweep_monitor(engine, now, report)
            self._sweep_voicemail(engine, now, report)
        self._settle_voicemail_calls(engine, now, report)
        if now - self._last_purge >= self.policy.purge_interval_s:
            self._last_purge = now
            with session_scope(engine) as s:
                report.purged = len(purge_expired(s, self.settings))
        if report.imported or report.orphans or report.linked or report.filed or report.errors:
            log.info("recordings sweep %s: %s", self.server.name, report.as_dict())
        return report

    # -- files --
    def _candidates(self, engine: Engine, sub: str, pattern: str, now: float) -> list[Path]:
        root = Path(self.server.spool_dir) / sub  # type: ignore[arg-type]
        lookback = now - self.policy.lookback_hours * 3600
        files = [
            p
            for p in spool_files(root, pattern, lookback, now - self.policy.quiet_s)
            if (key := self._key(p)) is not None and key not in self._bad
        ]
        if not files:
            return []
        with session_scope(engine, read_only=True) as s:
            done = imported_sources(s, [str(p.resolve()) for p in files])
        return [p for p in files if str(p.resolve()) not in done]

    @staticmethod
    def _key(p: Path) -> tuple[str, int, float] | None:
        try:
            st = p.stat()
        except OSError:  # gone since it was listed (the PBX moved or deleted it)
            return None
        return (str(p), st.st_size, st.st_mtime)

    def _calls_since(self, s: Session, since: float) -> list[CallRecord]:
        start = datetime(1970, 1, 1) + timedelta(seconds=since)
        return list(
            s.exec(
                select(CallRecord).where(
                    CallRecord.server == self.server.name,
                    CallRecord.started_at >= start,
                )
            )
        )

    def _import(self, engine: Engine, path: Path, fn, report: SweepReport, orphan: bool) -> None:
        try:
            with session_scope(engine) as s:
                fn(s)
        except AudioError as e:
            key = self._key(path)
            if key is not None:  # (a file gone meanwhile is not listed again anyway)
                self._bad.add(key)
            if e.code == "empty":  # MixMonitor(b) of a call no agent answered: nothing to keep
                report.empty += 1
                log.info("recording %s is empty (call never bridged); skipped", path.name)
                return
            report.errors.append(f"{path.name}: {e.code}")
            log.warning("recording %s rejected: %s (%s)", path.name, e.code, e.message)
            return
        except (OSError, StoreError) as e:  # may pass (NFS, disk space): tried again next sweep
            report.errors.append(f"{path.name[:120]}: unreadable")
            log.warning("recording %s not imported yet: %s", path.name, e)
            return
        if orphan:
            report.orphans += 1
        else:
            report.imported += 1

    def _sweep_monitor(self, engine: Engine, now: float, report: SweepReport) -> None:
        files = self._candidates(engine, "monitor", "*.[wW][aA][vV]", now)
        if not files:
            return
        oldest = min(_mtime(p, now) for p in files)
        with session_scope(engine, read_only=True) as s:
            calls = self._calls_since(s, oldest - MAX_CALL_S)
        by_name: dict[str, str] = {}
        for c in calls:
            for pbx in [c.recording_path or "", *((c.extra or {}).get("recordings") or [])]:
                if pbx:
                    by_name[PurePosixPath(pbx).name] = c.call_id
        for path in files:
            self._store(
                engine,
                path,
                by_name.get(path.name),
                now,
                report,
                claimed=import_call_monitor,
                alone=import_monitor,
            )

    def _store(
        self,
        engine: Engine,
        path: Path,
        call_id: str | None,
        now: float,
        report: SweepReport,
        *,
        claimed: Callable[[Session, Settings, Path, CallRecord], Any],
        alone: Callable[[Session, Settings, Path], Any],
    ) -> None:
        """A file its call claims is imported for that call; one no call claims, on its own
        once it is older than orphan_after_s (until then a call may still claim it)."""
        settings = self.settings
        if call_id is not None:

            def work(s: Session) -> None:
                row = s.exec(select(CallRecord).where(CallRecord.call_id == call_id)).one()
                claimed(s, settings, path, row)

        elif now - _mtime(path, now) >= self.policy.orphan_after_s:

            def work(s: Session) -> None:
                res = alone(s, settings, path)
                if asr_enabled(settings):
                    from asr import request_transcription

                    request_transcription(s, settings, res.recording.id)

        else:
            return
        self._import(engine, path, work, report, orphan=call_id is None)

    def _sweep_voicemail(self, engine: Engine, now: float, report: SweepReport) -> None:
        txts = self._candidates(engine, "voicemail", "msg*.txt", now)
        wavs = self._candidates(engine, "voicemail", "*.[wW][aA][vV]", now)
        pending = {w.with_suffix("").as_posix() for w in wavs}
        pairs: list[tuple[Path, PbxFile | None]] = []
        for txt in txts:
            wav = voicemail_wav(txt)
            if wav is not None and wav.with_suffix("").as_posix() in pending:
                try:
                    pairs.append((wav, parse_voicemail_txt(txt)))
                except (OSError, ValueError):
                    pairs.append((wav, None))
                pending.discard(wav.with_suffix("").as_posix())
        # a WAV without its .txt (Record() instead of VoiceMail(), or the .txt lost): orphan only
        pairs += [(w, None) for w in wavs if w.with_suffix("").as_posix() in pending]
        if not pairs:
            return
        window = self.policy.match_window_s
        oldest = min(_mtime(p, now) for p, _ in pairs)
        with session_scope(engine, read_only=True) as s:
            calls = [
                CallView.of_row(c)
                for c in self._calls_since(s, oldest - MAX_CALL_S)
                if c.disposition == "voicemail"
            ]
        for wav, vm in pairs:
            match = next((c for c in calls if vm and voicemail_matches(c, vm, window)), None)
            self._store(
                engine,
                wav,
                match.call_id if match else None,
                now,
                report,
                claimed=import_call_voicemail,
                alone=import_voicemail,
            )

    # -- voicemail calls waiting for their ticket --
    def _settle_voicemail_calls(self, engine: Engine, now: float, report: SweepReport) -> None:
        since = datetime(1970, 1, 1) + timedelta(seconds=now - self.policy.lookback_hours * 3600)
        with session_scope(engine, read_only=True) as s:
            waiting = [
                c.call_id
                for c in s.exec(
                    select(CallRecord).where(
                        CallRecord.server == self.server.name,
                        CallRecord.disposition == "voicemail",
                        CallRecord.ticket_id.is_(None),  # type: ignore[union-attr]
                        CallRecord.ticket_error.is_(None),  # type: ignore[union-attr]
                        CallRecord.started_at >= since,
                    )
                )
            ]
        for call_id in waiting:
            with session_scope(engine) as s:
                row = s.exec(select(CallRecord).where(CallRecord.call_id == call_id)).one()
                if row.ticket_id is not None:
                    continue
                rec = s.exec(
                    select(Recording).where(
                        Recording.call_id == call_id,
                        Recording.kind == "voicemail",
                        Recording.ticket_id.is_not(None),  # type: ignore[union-attr]
                    )
                ).first()
                if rec is not None:
                    link_call_ticket(s, row, rec.ticket_id)  # type: ignore[arg-type]
                    report.linked += 1
                    continue
                ended = epoch(row.ended_at) or epoch(row.started_at) or now
                grace_over = now - ended >= self.policy.voicemail_ticket_grace_s
                if grace_over and file_waiting_ticket(s, self.settings, row):
                    report.filed += 1


def file_waiting_ticket(session: Session, settings: Settings, row: CallRecord) -> bool:
    """The voicemail call's ticket without text (see the module docstring); links the call's
    recordings and callback task to it."""
    from asr import link_recording
    from callcenter.ami.calls import ticket_for_call

    rec = {
        "call_id": row.call_id,
        "disposition": row.disposition,
        "ivr_path": row.ivr_path or "",
        "queue": row.queue or "",
        "agent_name": row.agent_name or "",
        "caller_name": row.caller_name or "",
        "category": row.category,
        "recording": row.recording_path or "",
    }
    phone = row.caller_phone if (row.caller_phone or "").startswith("+") else None
    ticket_id, number, error = ticket_for_call(session, settings, rec, phone, callback="voicemail")
    if ticket_id is None:
        row.ticket_error = (error or "建单失败")[:500]
        session.add(row)
        return False
    link_call_ticket(session, row, ticket_id)
    row.ticket_error = error
    for r in session.exec(
        select(Recording).where(Recording.call_id == row.call_id, Recording.ticket_id.is_(None))  # type: ignore[union-attr]
    ):
        link_recording(session, settings, r.id, ticket_id)  # type: ignore[arg-type]
    log.info(
        "voicemail call %s from %s: no transcript ticket after the grace period; filed %s",
        row.call_id,
        mask_phone(phone) if phone else "-",
        number,
    )
    return True
