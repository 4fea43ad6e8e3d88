"""Importing what Asterisk wrote: copy + checksum + dedupe, date layout, metadata, retention."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timedelta

import pytest
from rec_testing import PBX_MONITOR, PBX_VOICEMAIL
from sqlmodel import select

from config.database import session_scope
from recordings.audio import AudioError
from recordings.models import Recording
from recordings.store import (
    absolute_path,
    import_file,
    import_monitor,
    import_voicemail,
    purge_expired,
    scan_spool,
    store_root,
)


def digest(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_import_mixmonitor_file(engine, settings):
    before = digest(PBX_MONITOR)
    with session_scope(engine) as s:
        r = import_monitor(s, settings, PBX_MONITOR, agent="zhangmin")
        rec = r.recording
        assert r.created
    assert digest(PBX_MONITOR) == before  # original untouched (and still there)
    assert rec.kind == "call" and rec.call_id == "1795569321.1"
    assert rec.caller_phone == "13800138000" and rec.agent == "zhangmin"
    # file name time 2026-11-25 09:15:31 Asia/Shanghai = 01:15:31 UTC
    assert rec.created_at == datetime(2026, 11, 25, 1, 15, 31)
    assert rec.path.startswith("2026/11/25/call-1795569321.1-")
    assert (rec.sample_rate, rec.channels, rec.codec) == (8000, 1, "pcm_s16le")
    assert rec.duration_s == pytest.approx(13.16)
    assert rec.bytes == PBX_MONITOR.stat().st_size and rec.sha256 == before
    stored = absolute_path(settings, rec)
    assert stored.is_file() and digest(stored) == before
    assert stored.parent.parent.parent.parent == store_root(settings)
    assert rec.expires_at == rec.created_at + timedelta(days=180)


def test_import_voicemail_reads_the_msg_txt(engine, settings):
    with session_scope(engine) as s:
        rec = import_voicemail(s, settings, PBX_VOICEMAIL).recording
    assert rec.kind == "voicemail"
    assert rec.call_id == "1795569405-00000000"
    assert rec.caller_phone == "13600136000"
    assert rec.meta["caller_name"] == "赵六" and rec.meta["origmailbox"] == "12345"
    assert rec.created_at == datetime.utcfromtimestamp(1795569405)
    assert rec.expires_at == rec.created_at + timedelta(days=365)
    # the bridge importing the same message with the AMI Uniqueid gets the same row
    with session_scope(engine) as s:
        again = import_voicemail(s, settings, PBX_VOICEMAIL, call_id="1795569400.7")
    assert not again.created and again.recording.id == rec.id


def test_dedupe_by_content_and_call(engine, settings, tmp_path):
    with session_scope(engine) as s:
        a = import_monitor(s, settings, PBX_MONITOR)
    with session_scope(engine) as s:
        b = import_monitor(s, settings, PBX_MONITOR)  # the spool scan after the AMI event
    assert not b.created and b.recording.id == a.recording.id
    # the same bytes under another call id are another recording
    with session_scope(engine) as s:
        c = import_file(s, settings, PBX_MONITOR, kind="call", call_id="other.2")
    assert c.created and c.recording.id != a.recording.id
    with session_scope(engine, read_only=True) as s:
        assert len(s.exec(select(Recording)).all()) == 2
    files = [p for p in store_root(settings).rglob("*") if p.is_file()]
    assert len(files) == 2 and not any(p.name.endswith(".part") for p in files)


def test_rolled_back_import_leaves_no_row(engine, settings):
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        import_monitor(s, settings, PBX_MONITOR)
        raise RuntimeError("caller failed later in the same transaction")
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(Recording)).all() == []
    # importing again works and reuses the already-copied file
    with session_scope(engine) as s:
        assert import_monitor(s, settings, PBX_MONITOR).created


def test_bad_file_is_refused_and_nothing_is_stored(engine, settings, tmp_path):
    bad = tmp_path / "dxe-20261125-091531-13800138000-1795569321.9.wav"
    bad.write_bytes(PBX_MONITOR.read_bytes()[:30])
    before = digest(bad)
    with pytest.raises(AudioError) as e, session_scope(engine) as s:
        import_monitor(s, settings, bad)
    assert e.value.code == "truncated_header"
    assert digest(bad) == before
    assert not store_root(settings).exists() or not any(store_root(settings).rglob("*.wav"))
    too_long = settings.model_copy(update={"max_audio_seconds": 5})
    with pytest.raises(AudioError, match="上限"), session_scope(engine) as s:
        import_monitor(s, too_long, PBX_MONITOR)


def test_scan_spool_imports_good_and_reports_bad(engine, settings, tmp_path):
    spool = tmp_path / "spool"
    (spool / "INBOX").mkdir(parents=True)
    shutil.copy(PBX_VOICEMAIL, spool / "INBOX" / "msg0000.wav")
    shutil.copy(PBX_VOICEMAIL.with_suffix(".txt"), spool / "INBOX" / "msg0000.txt")
    (spool / "INBOX" / "msg0001.wav").write_bytes(b"")
    with session_scope(engine) as s:
        ok, errors = scan_spool(s, settings, spool, kind="voicemail")
    assert [r.recording.caller_phone for r in ok] == ["13600136000"]
    assert [e.code for e in errors] == ["empty"]
    with session_scope(engine) as s:
        again, _ = scan_spool(s, settings, spool, kind="voicemail")
    assert [r.created for r in again] == [False]


def test_retention_purge(engine, settings):
    from ticketing.models import Ticket

    with session_scope(engine) as s:
        call = import_monitor(s, settings, PBX_MONITOR).recording
        vm = import_voicemail(s, settings, PBX_VOICEMAIL).recording
        # made when the monitor file was (the PBX's date, not today's): both fall due on one day
        kept = import_file(
            s, settings, PBX_MONITOR, kind="call", call_id="open.1", made_at=call.created_at
        ).recording
        t = Ticket(number="T-1", channel="hotline", title="t", content="c", category="enterprise")
        s.add(t)
        s.flush()
        kept.ticket_id = t.id
        s.add(kept)
    day_181 = call.created_at + timedelta(days=181)
    with session_scope(engine) as s:
        purged = purge_expired(s, settings, now=day_181)
    assert purged == [call.id]  # voicemail keeps 365 days; the open ticket's recording stays
    with session_scope(engine, read_only=True) as s:
        c = s.get(Recording, call.id)
        assert c.deleted_at == day_181
        assert not absolute_path(settings, c).exists()
        assert absolute_path(settings, s.get(Recording, vm.id)).exists()
        assert absolute_path(settings, s.get(Recording, kept.id)).exists()
    with session_scope(engine) as s:
        assert purge_expired(s, settings, now=day_181) == []  # idempotent
        s.get(Ticket, kept.ticket_id).status = "closed"
    with session_scope(engine) as s:
        assert purge_expired(s, settings, now=day_181) == [kept.id]
    assert PBX_MONITOR.exists()  # the PBX's own file is never touched by retention
