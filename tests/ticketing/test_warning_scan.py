"""§13 warning levels kept current by the scheduled scan, on SQLite and PostgreSQL; the job runs on a
real RQ worker over real Redis, enqueued by the real rq CronScheduler the `scheduler` child runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlmodel import Session, select

from callcenter.scheduler import build_scheduler
from config.database import session_scope
from config.queues import get_queue
from ticketing.departments import sync_departments
from ticketing.intake import submit
from ticketing.models import Ticket, TicketEvent, TicketStatus
from ticketing.queries import TicketFilter, list_tickets
from ticketing.schemas import TicketIn
from ticketing.warning_scan import scan_warnings


def _ticket(engine, settings, urgency: str, category: str = "complaint") -> Ticket:
    """A ticket left with the dispatcher (no auto-dispatch whatever the classifier's confidence):
    these tests follow the ticket's own clock, not a sub-order's accept step."""
    manual = settings.model_copy(update={"classifier_threshold": 1.01})
    with session_scope(engine) as s:
        sync_departments(s, settings)
        return submit(
            s,
            TicketIn(
                channel="web",
                content="投诉：办事窗口多次让企业补材料，营业执照迟迟办不下来",
                category=category,
                urgency=urgency,
                submitter_phone="13800138000",
                channel_data={"source_url": "https://example.gov.cn/form"},
            ),
            settings=manual,
            actor="tester",
        )


def _scan(engine, settings, at):
    with session_scope(engine) as s:
        return scan_warnings(s, settings, now=at)


def _warning_events(engine, tid):
    with Session(engine) as s:
        return [
            e.detail
            for e in s.exec(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == tid, TicketEvent.action == "warning")
                .order_by(TicketEvent.id)
            )
        ]


def test_levels_rise_with_the_time_used_and_each_change_is_one_event(engine, settings):
    t = _ticket(engine, settings, "critical")  # complaint × critical: 12 hours on the clock
    assert t.deadline_at - t.created_at == timedelta(hours=12)
    general = _ticket(engine, settings, "general")  # only blue applies before the deadline
    start = t.created_at
    # sla.yaml levels: critical matters are red from half their time; past due is overdue
    steps = [(1, "none"), (5.9, "none"), (6, "red"), (11, "red"), (12.01, "overdue")]
    for hours, level in steps:
        _scan(engine, settings, start + timedelta(hours=hours))
        with Session(engine) as s:
            assert s.get(Ticket, t.id).warning == level, hours
    again = _scan(engine, settings, start + timedelta(hours=12.5))
    assert not again.changed and again.tickets == 0  # nothing due: nothing read, nothing written
    moves = [(d["from"], d["to"], d["raised"]) for d in _warning_events(engine, t.id)]
    assert moves == [("none", "red", True), ("red", "overdue", True)]
    with Session(engine) as s:
        g = s.get(Ticket, general.id)
        assert g.warning == "none"  # 12 h of 3 working days is far from 2/3
        reds, total = list_tickets(s, TicketFilter(warning="overdue"))
        assert [x.id for x in reds] == [t.id] and total == 1
    late = g.deadline_at + timedelta(minutes=1)
    _scan(engine, settings, late)
    with Session(engine) as s:
        assert s.get(Ticket, general.id).warning == "overdue"  # whatever the urgency


def test_closed_tickets_keep_their_level_and_leave_the_scan(engine, settings):
    t = _ticket(engine, settings, "critical")
    _scan(engine, settings, t.created_at + timedelta(hours=7))
    with session_scope(engine) as s:
        row = s.get(Ticket, t.id)
        assert row.warning == "red"
        row.status = TicketStatus.closed  # closed behind the lifecycle's back: still settled
        s.add(row)
    _scan(engine, settings, t.created_at + timedelta(hours=13))
    with Session(engine) as s:
        row = s.get(Ticket, t.id)
        assert row.warning == "red" and row.sla_next_at is None
    res = _scan(engine, settings, t.created_at + timedelta(hours=14))
    assert res.tickets == 0


@pytest.mark.timeout(120)
def test_the_scheduler_enqueues_the_scan_and_a_worker_runs_it(engine, settings):
    t = _ticket(engine, settings, "critical")
    with session_scope(engine) as s:  # accepted 13 hours ago: past its 12-hour deadline
        row = s.get(Ticket, t.id)
        row.created_at -= timedelta(hours=13)
        row.deadline_at -= timedelta(hours=13)
        s.add(row)
    q = get_queue(settings, "default")
    cron = build_scheduler(settings, q.connection)
    jobs = ["warnings", "lost-work", "knowledge", "hotspots", "assessment"]
    assert [j.name for j in cron.get_jobs()] == jobs
    assert [j.name for j in cron.enqueue_jobs()] == jobs
    assert cron.enqueue_jobs() == []  # not due again before its interval
    SimpleWorker([q], connection=q.connection).work(burst=True)
    with Session(engine) as s:
        assert s.get(Ticket, t.id).warning == "overdue"
    assert [d["to"] for d in _warning_events(engine, t.id)] == ["overdue"]
