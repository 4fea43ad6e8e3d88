"""Transcription jobs in-process: voicemail → ticket, call recording → event, idempotency,
the outbox while Redis is unreachable, and the next-opening computation."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from rec_testing import PBX_MONITOR, PBX_VOICEMAIL
from rq.job import Job
from sqlalchemy import func
from sqlmodel import select

from asr.jobs import (
    flush_outbox,
    job_id,
    link_recording,
    outbox_key,
    process_recording,
    request_transcription,
)
from asr.models import JobOutbox, Transcript
from config.database import session_scope
from config.queues import get_queue
from recordings.models import Recording
from recordings.store import import_monitor, import_voicemail
from ticketing.callbacks import next_callback_time as next_opening
from ticketing.departments import sync_departments
from ticketing.intake import submit
from ticketing.models import CallbackTask, Notice, OutboxMessage, Ticket, TicketEvent
from ticketing.schemas import TicketIn

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: Redis "down"


@pytest.fixture
def down_settings(asr_settings):
    return asr_settings.model_copy(update={"redis_url": DOWN})


def counts(engine) -> dict[str, int]:
    with session_scope(engine, read_only=True) as s:
        return {
            m.__name__: s.exec(select(func.count()).select_from(m)).one()
            for m in (
                Transcript,
                Ticket,
                TicketEvent,
                CallbackTask,
                Notice,
                OutboxMessage,
                Recording,
            )
        }


def import_vm(engine, settings) -> int:
    with session_scope(engine) as s:
        sync_departments(s, settings)
        rec = import_voicemail(s, settings, PBX_VOICEMAIL).recording
        s.flush()
        request_transcription(s, settings, rec.id)
        return rec.id


def test_voicemail_becomes_a_ticket_with_transcript_and_callback(engine, down_settings, ko_model):
    rid = import_vm(engine, down_settings)
    with session_scope(engine, read_only=True) as s:
        row = s.exec(select(JobOutbox)).one()
        assert (row.key, row.status) == (outbox_key(rid), "pending")  # Redis down: kept in the DB
    r = process_recording(engine, down_settings, rid, ko_model)
    assert r.created_transcript and r.attached and r.ticket_id
    with session_scope(engine, read_only=True) as s:
        tr = s.exec(select(Transcript)).one()
        t = s.get(Ticket, r.ticket_id)
        assert t.channel == "voicemail"
        assert t.content == tr.text and tr.text  # the real recogniser output, nothing invented
        assert t.submitter_phone == "+8613600136000" and t.submitter_name == "赵六"
        assert t.channel_data["call_id"] == "1795569405-00000000"
        assert t.channel_data["recording_id"] == rid
        assert t.category and t.urgency and t.deadline_at
        assert s.get(Recording, rid).ticket_id == t.id
        cb = s.exec(select(CallbackTask)).one()
        assert (cb.reason, cb.phone, cb.ticket_id) == ("voicemail", "+8613600136000", t.id)
        # due at the next opening seen from when the task was made (now, if the line is open)
        assert abs((cb.due_at - next_opening(down_settings, cb.created_at)).total_seconds()) < 5
        ev = s.exec(select(TicketEvent).where(TicketEvent.action == "transcript_attached")).one()
        assert ev.detail["recording_id"] == rid and ev.detail["transcript_id"] == tr.id
        assert s.exec(select(Notice).where(Notice.ticket_id == t.id)).one().kind == "acceptance"
        sms = s.exec(select(OutboxMessage).where(OutboxMessage.ticket_id == t.id)).one()
        assert sms.to_phone == "+8613600136000" and t.number in sms.body
        assert s.exec(select(JobOutbox)).one().status == "done"
        words = tr.words
        assert words and all(w["start"] <= w["end"] <= tr.duration_s + 0.05 for w in words)
    before = counts(engine)
    again = process_recording(engine, down_settings, rid, ko_model)  # a retried job
    assert not again.created_transcript and not again.attached and again.ticket_id == r.ticket_id
    assert counts(engine) == before


def test_concurrent_duplicate_jobs_write_once(engine, down_settings, ko_model):
    rid = import_vm(engine, down_settings)
    results, errors = [], []

    def run():
        try:
            results.append(process_recording(engine, down_settings, rid, ko_model))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(r.created_transcript for r in results) == [False, True]
    c = counts(engine)
    assert (c["Transcript"], c["Ticket"], c["CallbackTask"]) == (1, 1, 1)
    with session_scope(engine, read_only=True) as s:
        assert (
            len(
                s.exec(select(TicketEvent).where(TicketEvent.action == "transcript_attached")).all()
            )
            == 1
        )


def test_call_recording_attaches_to_its_ticket_late_link_too(engine, down_settings, ko_model):
    with session_scope(engine) as s:
        sync_departments(s, down_settings)
        t = submit(
            s,
            TicketIn(
                channel="hotline",
                content="咨询营业执照办理",
                channel_data={"call_id": "1795569321.1"},
            ),
            settings=down_settings,
            actor="zhangmin",
        )
        tid = t.id
        rec = import_monitor(s, down_settings, PBX_MONITOR, agent="zhangmin").recording
        s.flush()
        rid = rec.id
    r = process_recording(engine, down_settings, rid, ko_model)
    assert r.ticket_id is None and not r.attached  # not linked yet: transcript kept, no event
    with session_scope(engine) as s:
        assert link_recording(s, down_settings, rid, tid)
    with session_scope(engine) as s:
        assert not link_recording(s, down_settings, rid, tid)  # once per (ticket, recording)
    with session_scope(engine, read_only=True) as s:
        evs = s.exec(select(TicketEvent).where(TicketEvent.action == "transcript_attached")).all()
        assert [e.ticket_id for e in evs] == [tid] and evs[0].detail["kind"] == "call"
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 1  # no extra ticket


def test_outbox_keeps_work_until_redis_answers(engine, down_settings, asr_settings):
    rid = import_vm(engine, down_settings)
    res = flush_outbox(engine, down_settings)
    assert not res.redis_ok and res.pending == 1
    # Redis is back (the real one of the test session)
    res = flush_outbox(engine, asr_settings)
    assert res.redis_ok and res.enqueued == 1
    q = get_queue(asr_settings, "asr")
    jid = job_id(asr_settings, outbox_key(rid))
    try:
        assert q.job_ids == [jid]
        job = Job.fetch(jid, connection=q.connection)
        assert job.func_name == "asr.jobs.transcribe_recording" and job.args[0] == rid
        assert job.retries_left == 3
        assert flush_outbox(engine, asr_settings).enqueued == 0  # already there: no duplicate
        assert q.job_ids == [jid]
        # Redis lost its data (restart without persistence): the enqueued row is pushed again
        job.delete()
        assert flush_outbox(engine, asr_settings).enqueued == 1
        assert q.job_ids == [jid]
    finally:
        for j in q.job_ids:
            Job.fetch(j, connection=q.connection).delete()


def test_request_is_idempotent_and_rolls_back_with_its_transaction(engine, down_settings):
    rid = import_vm(engine, down_settings)
    with session_scope(engine) as s:
        request_transcription(s, down_settings, rid)
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        request_transcription(s, down_settings, 424242)
        raise RuntimeError("importer failed")
    with session_scope(engine, read_only=True) as s:
        assert [r.key for r in s.exec(select(JobOutbox))] == [outbox_key(rid)]


@pytest.mark.parametrize(
    "local_now,expected_local",
    [
        ("2026-11-27 20:00", "2026-11-30 08:30"),  # Friday evening → Monday opening
        ("2026-11-25 03:10", "2026-11-25 08:30"),  # small hours → same morning
        ("2026-11-25 10:00", "2026-11-25 10:00"),  # open now → now
        ("2026-09-30 19:00", "2026-10-08 08:30"),  # National Day holiday (Oct 1-7 2026)
        ("2026-10-09 19:00", "2026-10-10 08:30"),  # Saturday Oct 10: a 调休 make-up workday
    ],
)
def test_next_opening(settings, local_now, expected_local):
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    now = datetime.fromisoformat(local_now).replace(tzinfo=tz).astimezone(ZoneInfo("UTC"))
    got = next_opening(settings, now.replace(tzinfo=None))
    want = datetime.fromisoformat(expected_local).replace(tzinfo=tz).astimezone(ZoneInfo("UTC"))
    assert got == want.replace(tzinfo=None)


def test_pick_up_skips_recordings_already_asked_for_before_its_limit(engine, down_settings):
    """Many recent recordings already queued must not hide a new one behind the limit."""
    from asr.jobs import pick_up_untranscribed
    from recordings.store import import_file

    with session_scope(engine) as s:
        ids = [
            import_file(s, down_settings, PBX_MONITOR, kind="call", call_id=f"c{i}").recording.id
            for i in range(3)
        ]
        for rid in ids[:2]:
            request_transcription(s, down_settings, rid)
    assert pick_up_untranscribed(engine, down_settings, limit=1) == 1
    with session_scope(engine, read_only=True) as s:
        keys = sorted(r.key for r in s.exec(select(JobOutbox)))
    assert keys == sorted(f"transcribe:{i}" for i in ids)
    assert pick_up_untranscribed(engine, down_settings, limit=1) == 0


def let_retry_backoff_pass(q) -> float:
    """Do what RQ's scheduler does once a retry's back-off has passed, without sleeping through
    it (30 s, then 300 s): returns how many seconds ahead the retry had been scheduled."""
    from datetime import UTC

    from rq.scheduler import RQScheduler

    reg = q.scheduled_job_registry
    (jid,) = reg.get_job_ids()
    ahead = (reg.get_scheduled_time(jid) - datetime.now(UTC)).total_seconds()
    q.connection.zadd(reg.key, {jid: 0})  # due now
    sch = RQScheduler([q.name], connection=q.connection)
    sch.prepare_registries([q.name])
    sch.enqueue_scheduled_jobs()
    return ahead


def test_a_job_that_keeps_failing_ends_in_the_failed_registry_and_never_blocks_new_work(
    engine, asr_settings, down_settings, ko_model
):
    """The stored file is gone (a disk lost, a hand-deleted file): every attempt fails. A real
    RQ worker retries it on the job's Retry back-off, then leaves it in the failed-job registry;
    the outbox closes its row, and such rows never crowd new recordings out of a flush."""
    from rq import SimpleWorker
    from rq.job import JobStatus

    from recordings.store import absolute_path, import_file

    st = asr_settings
    with session_scope(engine) as s:
        sync_departments(s, st)
        rec = import_file(s, st, PBX_MONITOR, kind="call", call_id="lost-1").recording
        s.flush()
        lost = rec.id
        request_transcription(s, st, lost)  # pushed to Redis after the commit
        stored = absolute_path(st, rec)
    stored.unlink()
    q = get_queue(st, "asr")
    jid = job_id(st, outbox_key(lost))
    try:
        backoffs = []
        for _ in range(4):  # the first attempt and RETRY.max retries, no more
            SimpleWorker([q], connection=q.connection).work(burst=True)
            job = Job.fetch(jid, connection=q.connection)
            if job.get_status() == JobStatus.FAILED:
                break
            assert job.get_status() == JobStatus.SCHEDULED
            backoffs.append(let_retry_backoff_pass(q))
        # attempts 1 and 2 back to back (interval 0), then 30 s, then 300 s
        assert [round(b, -1) for b in backoffs] == [30, 300], backoffs
        assert job.get_status() == JobStatus.FAILED and job.retries_left == 0
        assert jid in q.failed_job_registry.get_job_ids()
        assert "文件不存在" in job.latest_result().exc_string  # the AudioError, not a crash
        assert counts(engine)["Transcript"] == 0

        # a new recording while Redis is away: its row waits as "pending"
        with session_scope(engine) as s:
            new = import_file(s, st, PBX_MONITOR, kind="call", call_id="new-1").recording
            s.flush()
            request_transcription(s, down_settings, new.id)
            new_id = new.id
        # one row per status in this flush: the dead job's row must not take the new one's place
        res = flush_outbox(engine, st, limit=1)
        assert (res.failed, res.enqueued) == (1, 1), res
        assert job_id(st, outbox_key(new_id)) in q.job_ids
        with session_scope(engine, read_only=True) as s:
            rows = {r.key: r for r in s.exec(select(JobOutbox))}
        dead = rows[outbox_key(lost)]
        assert dead.status == "failed" and "AudioError" in dead.last_error
        assert rows[outbox_key(new_id)].status == "enqueued"
        assert flush_outbox(engine, st).failed == 0  # closed once, not counted again
    finally:
        for reg in (q.failed_job_registry, q.scheduled_job_registry):
            for j in reg.get_job_ids():
                Job.fetch(j, connection=q.connection).delete()
        for j in q.job_ids:
            Job.fetch(j, connection=q.connection).delete()
