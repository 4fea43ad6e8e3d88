"""The read queries behind the web workspace's desks: the manual-dispatch queue (oldest first,
waiting and reopened only), the leader's intake summary and overdue list, a caller's history,
pending extension requests."""

from __future__ import annotations

from datetime import timedelta

from _loop_helpers import make_ticket, seed_departments
from sqlmodel import select

import ticketing.dispatch as d
from config.database import session_scope
from ticketing import (
    TicketIn,
    caller_history,
    dispatch_queue,
    extension_requests,
    intake_summary,
    overdue_tickets,
    submit,
)
from ticketing.models import SubOrder, Ticket, utcnow


def test_dispatch_queue_is_oldest_first_and_only_waiting_tickets(engine, settings):
    seed_departments(engine, settings)
    ids = [make_ticket(engine, settings, title=f"t{i}") for i in range(3)]
    with session_scope(engine) as s:
        for i, tid in enumerate(ids):  # make their ages explicit: ids[0] the oldest
            s.get(Ticket, tid).created_at = utcnow() - timedelta(hours=10 - i)
        d.dispatch(s, settings, s.get(Ticket, ids[1]), ["SWJ"], actor="disp")
    with session_scope(engine, read_only=True) as s:
        items, total = dispatch_queue(s, 1, 10)
        assert total == 2 and [t.id for t in items] == [ids[0], ids[2]]
        items, total = dispatch_queue(s, 2, 1)
        assert total == 2 and [t.id for t in items] == [ids[2]]


def test_intake_summary_and_overdue(engine, settings):
    seed_departments(engine, settings)
    old = make_ticket(engine, settings, deadline=utcnow() - timedelta(hours=1))
    make_ticket(engine, settings, category="government")
    with session_scope(engine) as s:
        s.get(Ticket, old).warning = "red"
    with session_scope(engine, read_only=True) as s:
        summary = intake_summary(s, utcnow() - timedelta(hours=1))
        assert summary["channel"] == {"web": 2}
        assert summary["category"] == {"enterprise": 1, "government": 1}
        assert summary["warning"] == {"red": 1, "none": 1}
        assert intake_summary(s, utcnow() + timedelta(hours=1))["channel"] == {}
        assert [t.id for t in overdue_tickets(s, utcnow())] == [old]


def test_caller_history_and_extension_requests(engine, settings):
    seed_departments(engine, settings)
    with session_scope(engine) as s:
        for i, text in enumerate(("第一次来电咨询", "第二次来电咨询")):
            submit(s, TicketIn(channel="hotline", content=text, submitter_phone="13800138000",
                               channel_data={"call_id": f"call-{i}"},
                               departments=["SWJ"]), settings=settings, actor="agent")  # fmt: skip
    with session_scope(engine, read_only=True) as s:
        hist = caller_history(s, "138 0013 8000")
        assert [t.content for t in hist] == ["第二次来电咨询", "第一次来电咨询"]
        assert caller_history(s, "13900000000") == []
    with session_scope(engine) as s:
        t = s.exec(select(Ticket).where(Ticket.content == "第一次来电咨询")).one()
        so_id = s.exec(select(SubOrder.id).where(SubOrder.ticket_id == t.id)).one()
    with session_scope(engine) as s:
        d.accept(s, settings, so_id, actor="h")
        d.request_extension(s, settings, so_id, actor="h", reason="需核查", amount=1,
                            unit="working_days")  # fmt: skip
    with session_scope(engine, read_only=True) as s:
        rows = extension_requests(s)
        assert [(so.id, t.content) for so, t in rows] == [(so_id, "第一次来电咨询")]
