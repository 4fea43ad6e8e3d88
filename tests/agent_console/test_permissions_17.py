"""Issue #17 §6, who may do what: naming departments at intake is dispatching; a handler's view of
a shared ticket hides the other department everywhere; transcripts follow the recordings policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from console_helpers import DEPT_A, DEPT_B, assert_error
from sqlmodel import select

from agent_console.roles import ROLE_MATRIX, may_name_departments
from config.database import session_scope
from recordings.models import PlaybackLog
from recordings.store import import_monitor
from ticketing import events
from ticketing.intake import submit
from ticketing.models import Ticket
from ticketing.schemas import TicketIn

_SHARED = Path(__file__).resolve().parents[3] / "shared"
if not _SHARED.exists():
    _SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
MONITOR = _SHARED / "fixtures/ami/pbx-side/monitor/dxe-20261125-091531-13800138000-1795569321.1.wav"
TEXT = "您好我想问一下营业执照变更需要什么材料"

BODY = {
    "channel": "window",
    "channel_data": {"window_no": "A3"},
    "content": "企业开办营业执照办理进度咨询，窗口已受理三天仍无结果。",
    "category": "enterprise",
    "urgency": "general",
}


@pytest.mark.parametrize("who", ["admin", "dispatcher", "agent", "supervisor"])
def test_naming_departments_at_intake_needs_the_dispatch_permission(api, who):
    r = api.client.post(
        "/api/v1/tickets",
        json={**BODY, "departments": [DEPT_A, DEPT_B, "RSJ"]},
        headers=api.auth(who),
    )
    if who in ROLE_MATRIX["tickets.dispatch"]:
        assert r.status_code == 201, r.text
    else:
        assert_error(r, 403, "dispatch_forbidden")
        assert api.count(Ticket) == 0
        # without departments the same role files the ticket as before
        r = api.client.post("/api/v1/tickets", json=BODY, headers=api.auth(who))
        assert r.status_code == 201, r.text
    assert may_name_departments(who) == (who in ROLE_MATRIX["tickets.dispatch"])


def test_a_handler_sees_no_other_department_in_the_history(api):
    r = api.client.post(
        "/api/v1/tickets", json={**BODY, "departments": [DEPT_A, DEPT_B]}, headers=api.auth("admin")
    )
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    full = api.client.get(f"/api/v1/tickets/{number}", headers=api.auth("dispatcher")).json()
    assert any(DEPT_B in str(e["detail"]) for e in full["events"])  # it is there to hide
    for handler, own, other in (("handler", DEPT_A, DEPT_B), ("handler_b", DEPT_B, DEPT_A)):
        t = api.client.get(f"/api/v1/tickets/{number}", headers=api.auth(handler)).json()
        assert {s["department_code"] for s in t["suborders"]} == {own}
        assert other not in str(t["events"]), t["events"]
        dispatched = [e for e in t["events"] if e["action"] == "dispatched"]
        assert dispatched and dispatched[0]["detail"]["departments"] == [own]


def _ticket_with_transcript(api) -> tuple[str, int]:
    with session_scope(api.engine) as s:
        t = submit(
            s,
            TicketIn(
                channel="hotline",
                content="营业执照变更咨询",
                departments=[DEPT_A],
                channel_data={"call_id": "1795569321.1"},
            ),
            settings=api.settings,
            actor="agent",
        )
        rid = import_monitor(s, api.settings, MONITOR, agent="agent", ticket_id=t.id).recording.id
        events.record(
            s,
            t.id,
            "asr",
            "transcript_attached",
            recording_id=rid,
            transcript_id=1,
            kind="call",
            text=TEXT,
            keywords=["营业执照"],
        )
        return t.number, rid


def test_transcripts_follow_the_recordings_policy_and_reads_are_logged(api):
    number, rid = _ticket_with_transcript(api)
    # recordings.yaml: admin/supervisor/leader all, agent own calls, handler its department,
    # dispatcher nothing; agent_b handled no call of this ticket
    expected = {
        "admin": True,
        "supervisor": True,
        "leader": True,
        "agent": True,  # handled the call
        "handler": True,  # its department's ticket
        "dispatcher": False,
    }
    for who, may in expected.items():
        r = api.client.get(f"/api/v1/tickets/{number}", headers=api.auth(who))
        assert r.status_code == 200, r.text
        ev = next(e for e in r.json()["events"] if e["action"] == "transcript_attached")
        if may:
            assert ev["detail"]["text"] == TEXT, who
        else:
            assert TEXT not in r.text and '营业执照"' not in r.text, who
            assert ev["detail"]["redacted"] is True and "text" not in ev["detail"]
    with session_scope(api.engine, read_only=True) as s:
        logs = s.exec(select(PlaybackLog).where(PlaybackLog.recording_id == rid)).all()
    got = {(row.username, row.status_code, row.what) for row in logs}
    assert got == {(who, 200 if may else 403, "transcript") for who, may in expected.items()}, got


def test_another_agents_call_transcript_is_withheld(api):
    from console_helpers import PASSWORD

    number, _ = _ticket_with_transcript(api)
    r = api.client.post(
        "/api/v1/users",
        json={"username": "agent_b", "password": "a-long-unusual-pass", "role": "agent"},
        headers=api.auth("admin"),
    )
    assert r.status_code == 201, r.text
    login = api.client.post(
        "/api/v1/auth/login", json={"username": "agent_b", "password": "a-long-unusual-pass"}
    )
    h = {"Authorization": f"Bearer {login.json()['access_token']}"}
    r = api.client.get(f"/api/v1/tickets/{number}", headers=h)
    assert r.status_code == 200 and TEXT not in r.text
    assert PASSWORD  # (the seeded users' password is unrelated)
