"""Issue #18: times inside an event's detail are written timezone-aware (ticketing.events), the API
says them in the service's zone (+08:00) as it says every time, and rows written before that, with
naive UTC text, still read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import text
from sqlmodel import select
from test_tickets import _create

from config.database import session_scope
from ticketing import Ticket, events
from ticketing.events import detail_time
from ticketing.models import TicketEvent


def _ticket_id(api, number: str) -> int:
    with session_scope(api.engine, read_only=True) as s:
        return s.exec(select(Ticket.id).where(Ticket.number == number)).one()


def test_detail_times_are_stored_aware(api):
    tid = _ticket_id(api, _create(api)["number"])
    with session_scope(api.engine) as s:
        events.record(
            s,
            tid,
            "disp",
            "extension_approved",
            previous_deadline=datetime(2026, 12, 7, 1, 30),  # the models' naive UTC
            until=datetime(2026, 12, 8, 9, 0, tzinfo=timezone(timedelta(hours=8))),
            nested={"times": [datetime(2026, 12, 9, 2, 0)]},
            day="2026-12-07",
        )
    with session_scope(api.engine, read_only=True) as s:
        row = s.exec(select(TicketEvent).where(TicketEvent.action == "extension_approved")).one()
    assert row.detail["previous_deadline"] == "2026-12-07T01:30:00+00:00"
    assert row.detail["until"] == "2026-12-08T09:00:00+08:00"
    assert row.detail["nested"] == {"times": ["2026-12-09T02:00:00+00:00"]}
    assert row.detail["day"] == "2026-12-07"  # a date is not a time


def test_old_naive_text_reads_as_utc():
    assert detail_time("2026-12-07T01:30:00") == datetime(2026, 12, 7, 1, 30, tzinfo=UTC)
    assert detail_time("2026-12-07T01:30:00.250000") == datetime(
        2026, 12, 7, 1, 30, 0, 250000, tzinfo=UTC
    )
    aware = detail_time("2026-12-07T09:30:00+08:00")
    assert aware is not None and aware.astimezone(UTC) == datetime(2026, 12, 7, 1, 30, tzinfo=UTC)
    for other in ("2026-12-07", "已办结 2026-12-07T01:30:00", "", "2026-13-40T99:00:00", 5):
        assert detail_time(other) is None


def test_the_api_says_detail_times_in_beijing_time_old_rows_too(api):
    number = _create(api)["number"]
    tid = _ticket_id(api, number)
    with session_scope(api.engine) as s:
        events.record(s, tid, "disp", "extension_approved", until=datetime(2026, 12, 7, 1, 30))
        # a row written before #18: naive UTC text, straight into the table
        s.connection().execute(
            TicketEvent.__table__.insert(),  # type: ignore[attr-defined]
            {
                "ticket_id": tid,
                "actor": "disp",
                "action": "extension_requested",
                "detail": {"until": "2026-12-07T02:00:00", "reason": "材料未齐 2026-12-07T02:00"},
                "at": datetime(2026, 12, 7, 0, 0),
            },
        )
    r = api.client.get(f"/api/v1/tickets/{number}", headers=api.auth("dispatcher"))
    assert r.status_code == 200, r.text
    by_action = {e["action"]: e["detail"] for e in r.json()["events"]}
    assert by_action["extension_approved"]["until"] == "2026-12-07T09:30:00+08:00"
    assert by_action["extension_requested"]["until"] == "2026-12-07T10:00:00+08:00"
    assert by_action["extension_requested"]["reason"] == "材料未齐 2026-12-07T02:00"  # prose kept
    with session_scope(api.engine, read_only=True) as s:
        stored = s.exec(text("SELECT detail FROM ticketevent WHERE action = 'extension_approved'"))
        assert "+00:00" in str(stored.one()[0])
