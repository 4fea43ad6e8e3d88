"""RQ jobs of the ASR package, with a database outbox in front of Redis.

Flow: whoever stores a recording calls `request_transcription(session, settings, recording_id)` in
the same transaction; that writes a JobOutbox row (unique key per recording). After the commit the
row is pushed to the "asr" queue (job id derived from the key, enqueued with unique=True, so a
second push is a no-op). If Redis is down the row stays `pending` and `flush_outbox` (after the
next commit, from `callcenter asr flush-outbox`, or every ASR worker's maintenance round)
enqueues it when Redis is back. A row `enqueued` whose RQ job no longer exists in Redis (Redis
restarted without its data) is pushed again by the same flush; one whose job used up its retries
is closed as `failed` (the job stays in RQ's failed-job registry, where `rq requeue` can revive
it).

At-least-once without double effects: `process_recording` transcribes outside any transaction,
then writes the Transcript (recording_id UNIQUE), the voicemail ticket + callback (intake is
idempotent on call_id), the "transcript_attached" event and the outbox `done` mark in ONE
transaction. A retried, duplicated or reclaimed job (a worker SIGKILLed mid-job: rq's
StartedJobRegistry cleanup re-queues the job once its heartbeat expires, because the job carries
a Retry) either finds the transcript and only completes what is missing, or loses the unique race
and rolls back whole.

Job arguments are the recording id and a settings snapshot without secrets (the convention of
ticketing.jobs); the worker's environment supplies the rest.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from rq import Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from sqlalchemy import String, cast, literal
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from asr.keywords import keyword_list, spot
from asr.model import LoadedModel, get_model
from asr.models import JobOutbox, Transcript
from asr.transcribe import transcribe_file
from config.after_commit import after_commit
from config.database import make_engine, session_scope
from config.queues import get_queue
from config.settings import Settings
from recordings import Recording, absolute_path
from ticketing import TicketEvent, index_transcript, record_event, utcnow

log = logging.getLogger("asr.jobs")

QUEUE = "asr"
FUNC = "asr.jobs.transcribe_recording"
# First retry immediately: the usual cause is a worker that died mid-job (rq re-queues it from the
# StartedJobRegistry cleanup) and an immediate retry needs no scheduler process; later ones back off
# (those need a worker started with the scheduler, as `callcenter asr worker` / `run` do).
RETRY = Retry(max=3, interval=[0, 30, 300])
_INFO_KEY = "asr.outbox.flush"
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def snapshot(settings: Settings) -> dict[str, Any]:
    return settings.job_snapshot("asr_model_path", "max_audio_seconds")


def outbox_key(recording_id: int) -> str:
    return f"transcribe:{recording_id}"


def job_id(settings: Settings, key: str) -> str:
    """RQ job ids are global in a Redis; the namespace keeps two deployments (or tests) apart."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{settings.redis_namespace}-asr-{key}")


def job_timeout(duration_s: float | None) -> int:
    """Generous: 2 × audio length (RTF ≈ 0.3–0.6 on a loaded CPU) plus model start-up."""
    return int(300 + 2 * (duration_s or 0))


# ---- enqueueing through the outbox --------------------------------------------------------------


def request_transcription(session: Session, settings: Settings, recording_id: int) -> JobOutbox:
    """Add (once) the outbox row for a recording; it is pushed to Redis after the commit."""
    key = outbox_key(recording_id)
    row = session.exec(select(JobOutbox).where(JobOutbox.key == key)).first()
    if row is None:
        row = JobOutbox(key=key, queue=QUEUE, func=FUNC, args=[recording_id])
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            row = session.exec(select(JobOutbox).where(JobOutbox.key == key)).one()
    _flush_after_commit(session, settings)
    return row


def _flush_after_commit(session: Session, settings: Settings) -> None:
    """Push the outbox once the caller's transaction commits (config.after_commit: a savepoint's
    release is not the commit)."""
    after_commit(session, _INFO_KEY, [(session.get_bind(), settings)], _flush_pushed)


def _flush_pushed(items: list[tuple[Any, Settings]]) -> None:
    bind, settings = items[-1]
    try:
        flush_outbox(bind, settings)
    except Exception:  # committed already; the row stays pending for the next flush
        log.exception("asr outbox flush after commit failed")


@dataclass
class FlushResult:
    enqueued: int = 0
    already: int = 0  # the RQ job existed (a previous push got through)
    pending: int = 0  # left for the next flush
    failed: int = 0  # rows whose job used up its retries (now in RQ's failed-job registry)
    redis_ok: bool = True


# An RQ job in one of these states will not run again by itself: its outbox row is closed as
# "failed" (the job stays in RQ's failed-job registry for the operator, `rq requeue` revives it).
_DEAD = (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)


def _rows(s: Session, status: str, limit: int) -> list[JobOutbox]:
    return list(
        s.exec(
            select(JobOutbox)
            .where(JobOutbox.status == status)
            .order_by(JobOutbox.id)  # type: ignore[arg-type]
            .limit(limit)
        )
    )


def flush_outbox(
    engine: Engine, settings: Settings, *, conn: redis.Redis | None = None, limit: int = 200
) -> FlushResult:
    """Push pending rows to RQ, push again `enqueued` rows whose job vanished from Redis, and
    close as `failed` those whose job died for good.

    Pending and enqueued rows are read separately, each up to `limit`: a backlog of queued work
    or old failures must never crowd new work out of the batch (one query for both let 200
    failed jobs stop every later recording from being queued). The enqueued rows' jobs are
    looked up in one round trip (Job.fetch_many), as this runs after every commit that asks
    for a transcription."""
    res = FlushResult()
    with session_scope(engine, read_only=True) as s:
        enqueued = _rows(s, "enqueued", limit)
        pending = _rows(s, "pending", limit)
        ids = [row.args[0] for row in (*enqueued, *pending) if row.args]
        durations = {
            r.id: r.duration_s
            for r in s.exec(select(Recording).where(Recording.id.in_(ids)))  # type: ignore[union-attr]
        }
    if not enqueued and not pending:
        return res
    try:
        queue = get_queue(settings, QUEUE, conn)
        queue.connection.ping()
        jobs = Job.fetch_many(
            [job_id(settings, row.key) for row in enqueued], connection=queue.connection
        )
    except _REDIS_DOWN as e:
        n = len(enqueued) + len(pending)
        log.warning("asr outbox: Redis unreachable (%s); %d row(s) kept", e, n)
        return FlushResult(pending=len(pending), redis_ok=False)
    to_push = []
    for row, job in zip(enqueued, jobs, strict=True):
        if job is None:
            to_push.append(row)  # Redis lost it (restart without persistence, eviction)
        elif job.get_status(refresh=False) in _DEAD:
            res.failed += 1
            _mark(engine, row.id, status="failed", last_error=_job_error(job))
    snap = snapshot(settings)
    for row in [*to_push, *pending]:
        jid = job_id(settings, row.key)
        try:
            try:
                queue.enqueue(
                    row.func,
                    args=(*row.args, snap),
                    job_id=jid,
                    unique=True,
                    retry=RETRY,
                    job_timeout=job_timeout(durations.get(row.args[0]) if row.args else None),
                    result_ttl=24 * 3600,
                    failure_ttl=30 * 24 * 3600,
                    description=f"asr {row.key}",
                )
                res.enqueued += 1
            except DuplicateJobError:
                res.already += 1
        except _REDIS_DOWN as e:
            res.redis_ok = False
            res.pending += 1
            _mark(engine, row.id, attempts=row.attempts + 1, last_error=str(e)[:1000])
            continue
        _mark(engine, row.id, status="enqueued", enqueued_at=utcnow(), last_error=None)
    return res


def _job_error(job: Job) -> str:
    """The last line of the job's traceback (the exception), for the outbox row."""
    try:
        result = job.latest_result()
    except _REDIS_DOWN:
        result = None
    text = (getattr(result, "exc_string", None) or "").strip()
    last = text.splitlines()[-1] if text else ""
    return (last or f"RQ job {job.get_status(refresh=False)}")[:1000]


def _mark(engine: Engine, row_id: int | None, **values: Any) -> None:
    with session_scope(engine) as s:
        row = s.get(JobOutbox, row_id)
        if row is not None and row.status != "done":
            for k, v in values.items():
                setattr(row, k, v)
            s.add(row)


def pick_up_untranscribed(
    engine: Engine, settings: Settings, *, since_hours: float = 48, limit: int = 500
) -> int:
    """Queue every recent recording nobody asked to transcribe (one a package stored without
    importing asr, e.g. a Twilio voicemail fetched by recordings.remote). Returns how many."""
    from datetime import timedelta

    since = utcnow() - timedelta(hours=since_hours)
    # the outbox key of each recording, built in SQL (`||` on SQLite and PostgreSQL), so the
    # recordings already asked for are excluded before the limit, however many there are
    key = literal("transcribe:").concat(cast(Recording.id, String))
    asked = select(JobOutbox.id).where(JobOutbox.key == key)
    with session_scope(engine, read_only=True) as s:
        todo = list(
            s.exec(
                select(Recording.id)
                .where(
                    Recording.kind.in_(["call", "voicemail"]),  # type: ignore[attr-defined]
                    Recording.created_at >= since,  # (kind, created_at) index
                    Recording.deleted_at.is_(None),  # type: ignore[union-attr]
                    ~asked.exists(),
                )
                .order_by(Recording.id.desc())  # type: ignore[union-attr]
                .limit(limit)
            )
        )
    if todo:
        with session_scope(engine) as s:
            for rid in todo:
                request_transcription(s, settings, rid)  # type: ignore[arg-type]
    return len(todo)


# ---- the work ---------------------------------------------------------------------------------


@dataclass
class ProcessResult:
    recording_id: int
    transcript_id: int
    ticket_id: int | None
    created_transcript: bool
    attached: bool
    rtf: float | None
    model_pid: int | None = None  # the process that loaded the model used (None: not transcribed)


def process_recording(
    engine: Engine, settings: Settings, recording_id: int, lm: LoadedModel | None = None
) -> ProcessResult:
    """Transcribe one stored recording and put the text on its ticket (idempotent)."""
    with session_scope(engine, read_only=True) as s:
        rec = s.get(Recording, recording_id)
        if rec is None:
            raise LookupError(f"recording {recording_id} does not exist")
        done = s.exec(select(Transcript).where(Transcript.recording_id == recording_id)).first()
        path = absolute_path(settings, rec)

    fresh: Transcript | None = None
    rtf = None
    model_pid = None
    if done is None:
        lm = lm or get_model(settings)
        model_pid = lm.loaded_in_pid
        res = transcribe_file(lm, path, max_seconds=settings.max_audio_seconds)
        words = res.words_as_dicts()
        hits = spot(res.raw_text, settings, words=words)
        rtf = res.rtf
        fresh = Transcript(
            recording_id=recording_id,
            text=res.text,
            raw_text=res.raw_text,
            words=words,
            keywords=[h.as_dict() for h in hits],
            language=res.language,
            model=res.model,
            duration_s=res.duration_s,
            rtf=round(res.rtf, 4),
        )

    with session_scope(engine) as s:
        created = False
        tr: Transcript | None = None
        if fresh is not None:
            try:
                with s.begin_nested():
                    s.add(fresh)
                tr, created = fresh, True
            except IntegrityError:  # another worker got there first: use its transcript
                tr = None
        if tr is None:
            tr = s.exec(select(Transcript).where(Transcript.recording_id == recording_id)).one()
        rec = s.get(Recording, recording_id)
        assert rec is not None
        attached = attach_transcript(s, settings, rec, tr)
        row = s.exec(select(JobOutbox).where(JobOutbox.key == outbox_key(recording_id))).first()
        if row is not None and row.status != "done":
            row.status, row.done_at = "done", utcnow()
            s.add(row)
        return ProcessResult(
            recording_id,
            tr.id,  # type: ignore[arg-type]
            rec.ticket_id,
            created,
            attached,
            rtf,
            model_pid,
        )


def attach_transcript(session: Session, settings: Settings, rec: Recording, tr: Transcript) -> bool:
    """Voicemail without a ticket → create it; then one "transcript_attached" event per
    (ticket, recording). Returns True when the event was written now. Also called by the bridge
    when it links a call recording to its ticket after the transcript exists."""
    kws = keyword_list_from_rows(tr.keywords)
    if rec.kind == "voicemail" and rec.ticket_id is None:
        from asr.voicemail import create_voicemail_ticket

        create_voicemail_ticket(
            session, settings, rec, text=tr.text, keywords=kws, transcript_id=tr.id
        )
    if rec.ticket_id is None:
        return False  # a call recording not linked to a ticket yet; linking attaches later
    prior = session.exec(
        select(TicketEvent).where(
            TicketEvent.ticket_id == rec.ticket_id, TicketEvent.action == "transcript_attached"
        )
    ).all()
    if any((e.detail or {}).get("recording_id") == rec.id for e in prior):
        return False
    record_event(
        session,
        rec.ticket_id,
        "asr",
        "transcript_attached",
        recording_id=rec.id,
        transcript_id=tr.id,
        kind=rec.kind,
        text=tr.text[:2000],
        chars=len(tr.text),
        keywords=kws,
        duration_s=tr.duration_s,
        language=tr.language,
    )
    # the hotspot analysis's keywords (§19): the transcript's words and the spotter's hits
    index_transcript(session, settings, rec.ticket_id, {"text": tr.text, "keywords": kws})
    return True


def keyword_list_from_rows(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r.get("word")) for r in rows or [] if r.get("word")))


def link_recording(session: Session, settings: Settings, recording_id: int, ticket_id: int) -> bool:
    """The bridge links a call recording to its ticket; attaches the transcript if it exists."""
    rec = session.get(Recording, recording_id)
    if rec is None:
        raise LookupError(f"recording {recording_id} does not exist")
    rec.ticket_id = ticket_id
    session.add(rec)
    session.flush()
    tr = session.exec(select(Transcript).where(Transcript.recording_id == recording_id)).first()
    return attach_transcript(session, settings, rec, tr) if tr else False


# ---- RQ entry point ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _engine(url: str, pid: int) -> Engine:
    return make_engine(url)


def transcribe_recording(recording_id: int, snap: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the worker runs. The model comes from the process cache (loaded once per worker)."""
    settings = Settings(**(snap or {}))
    engine = _engine(settings.resolved_database_url, os.getpid())
    r = process_recording(engine, settings, recording_id)
    return {
        "recording_id": r.recording_id,
        "transcript_id": r.transcript_id,
        "ticket_id": r.ticket_id,
        "created": r.created_transcript,
        "rtf": r.rtf,
        "pid": os.getpid(),
        "model_pid": r.model_pid,
    }


__all__ = [
    "FlushResult",
    "ProcessResult",
    "attach_transcript",
    "flush_outbox",
    "keyword_list",
    "link_recording",
    "process_recording",
    "request_transcription",
    "transcribe_recording",
]
