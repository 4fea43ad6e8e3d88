"""Issue #17 §7: the SMS outbox drains in batches (one job per commit, and a job sweeps up the
backlog), so a burst of intake does not leave thousands of notices waiting one RQ job each."""

from __future__ import annotations

from sqlmodel import select
from test_notices_notify import PHONE, count, queue, run_worker, twilio  # noqa: F401

from config.database import session_scope
from ticketing import notify
from ticketing.models import OutboxMessage


def _rows(engine) -> list[OutboxMessage]:
    with session_scope(engine, read_only=True) as s:
        return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_one_commit_is_one_job_for_all_its_messages(engine, settings, queue):  # noqa: F811
    with session_scope(engine) as s:
        for i in range(120):
            notify.send_sms(s, settings, PHONE, f"第{i}条")
    assert queue.count == 1  # not 120
    run_worker(queue, settings)
    rows = _rows(engine)
    assert len(rows) == 120
    assert {(r.status, r.attempts) for r in rows} == {("logged", 1)}


def test_a_burst_of_commits_queues_one_job_that_drains_them_all(engine, settings, queue):  # noqa: F811
    for i in range(40):  # 40 commits while no worker runs (a burst)
        with session_scope(engine) as s:
            notify.send_sms(s, settings, PHONE, f"第{i}条")
    assert queue.count == 1  # the waiting job will take the others too
    statuses = notify.deliver_batch(*queue.jobs[0].args)
    assert len(statuses) == 40 and set(statuses.values()) == {"logged"}
    queue.empty()
    # once that job started, the next commit queues a new one (the first may be past its rows)
    with session_scope(engine) as s:
        notify.send_sms(s, settings, PHONE, "后来的")
    assert queue.count == 1
    run_worker(queue, settings)
    assert {(r.status, r.attempts) for r in _rows(engine)} == {("logged", 1)}
    assert len(_rows(engine)) == 41


def test_a_backlog_larger_than_a_batch_is_drained_by_one_job(engine, settings, queue, monkeypatch):  # noqa: F811
    monkeypatch.setattr(notify, "BATCH_SIZE", 7)
    with session_scope(engine) as s:
        for i in range(30):
            notify.send_sms(s, settings, PHONE, f"第{i}条")
    assert queue.count == 5  # chunks of 7
    first = queue.jobs[0]
    assert len(notify.deliver_batch(*first.args)) == 30  # it drained everything
    run_worker(queue, settings)  # the other chunks find nothing: no message sent twice
    assert {(r.status, r.attempts) for r in _rows(engine)} == {("logged", 1)}


def test_twilio_batch_sends_each_message_once(engine, settings, queue, twilio):  # noqa: F811
    with session_scope(engine) as s:
        ids = [notify.send_sms(s, settings, PHONE, f"批量{i}").id for i in range(30)]
    run_worker(queue, settings)
    rows = _rows(engine)
    assert [r.id for r in rows] == ids
    assert {r.status for r in rows} == {"sent"}
    assert len({r.provider_id for r in rows}) == 30
    assert sorted(req["form"]["Body"][0] for req in twilio.requests) == sorted(
        f"批量{i}" for i in range(30)
    )
    assert notify.deliver_batch(ids, notify._snapshot(settings)) == {}  # nothing left to claim


def test_a_transient_twilio_error_retries_only_the_failed_rows(engine, settings, queue, twilio):  # noqa: F811
    twilio.status = 503
    with session_scope(engine) as s:
        ids = [notify.send_sms(s, settings, PHONE, f"重试{i}").id for i in range(5)]
    run_worker(queue, settings)  # the job fails; every row back to pending, attempts 1
    assert {(r.status, r.attempts) for r in _rows(engine)} == {("pending", 1)}
    twilio.status = 201
    assert notify.flush_pending(settings) == 5
    run_worker(queue, settings)
    assert {(r.status, r.attempts) for r in _rows(engine)} == {("sent", 2)}
    assert count(engine, OutboxMessage) == len(ids)
