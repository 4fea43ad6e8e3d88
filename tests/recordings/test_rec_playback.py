"""Playback through the router factory over real HTTP semantics: roles, ranges, the audit log.

The auth dependency here reads the username from a header and loads the real User row: the API
helper's token auth is not under test, the router's own access rules and logging are.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from rec_testing import PBX_MONITOR, PBX_VOICEMAIL
from sqlmodel import select

from config.database import session_scope
from recordings.api import make_router
from recordings.models import PlaybackLog
from recordings.playback import ByteRange, RangeNotSatisfiable, parse_range
from recordings.store import import_monitor, import_voicemail
from ticketing.models import Department, SubOrder, Ticket, User

USERS = {
    "admin1": ("admin", None),
    "sup1": ("supervisor", None),
    "lead1": ("leader", None),
    "zhangmin": ("agent", None),
    "liqiang": ("agent", None),
    "hand_scjg": ("handler", "SCJG"),
    "hand_swj": ("handler", "SWJ"),
    "disp1": ("dispatcher", None),
}


@pytest.fixture
def world(engine, settings):
    with session_scope(engine) as s:
        s.add(Department(code="SCJG", name="市场监督管理局"))
        s.add(Department(code="SWJ", name="税务局"))
        s.flush()
        for name, (role, dept) in USERS.items():
            s.add(User(username=name, password_hash="x", role=role, department_code=dept))
        t = Ticket(number="DXE-1", channel="hotline", title="t", content="c", category="enterprise")
        s.add(t)
        s.flush()
        s.add(SubOrder(ticket_id=t.id, department_code="SCJG"))
        call = import_monitor(s, settings, PBX_MONITOR, agent="zhangmin", ticket_id=t.id).recording
        vm = import_voicemail(s, settings, PBX_VOICEMAIL).recording
    app = FastAPI()
    app.state.engine, app.state.settings = engine, settings

    def auth(x_user: str = Header(default="")) -> User:
        with session_scope(engine, read_only=True) as s:
            u = s.exec(select(User).where(User.username == x_user)).first()
        if u is None:
            raise HTTPException(401, "login")
        return u

    app.include_router(make_router(lambda _route: auth), prefix="/api")
    return TestClient(app), call, vm


def get(client, rid, user, **headers):
    return client.get(f"/api/recordings/{rid}/audio", headers={"X-User": user, **headers})


def logs(engine, rid):
    with session_scope(engine, read_only=True) as s:
        return s.exec(
            select(PlaybackLog).where(PlaybackLog.recording_id == rid).order_by(PlaybackLog.id)
        ).all()


def test_full_file_and_byte_ranges(world, engine):
    client, call, _ = world
    data = PBX_MONITOR.read_bytes()
    size = len(data)
    r = get(client, call.id, "sup1")
    assert r.status_code == 200 and r.content == data
    assert r.headers["accept-ranges"] == "bytes" and r.headers["content-type"] == "audio/wav"
    r = get(client, call.id, "sup1", Range="bytes=0-99")
    assert r.status_code == 206 and r.content == data[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{size}"
    assert r.headers["content-length"] == "100"
    r = get(client, call.id, "sup1", Range="bytes=1000-")
    assert r.status_code == 206 and r.content == data[1000:]
    r = get(client, call.id, "sup1", Range="bytes=-500")
    assert r.status_code == 206 and r.content == data[-500:]
    r = get(client, call.id, "sup1", Range=f"bytes=100-{size + 5000}")  # end clipped
    assert r.status_code == 206 and r.content == data[100:]
    r = get(client, call.id, "sup1", Range="bytes=0-1,5-6")  # multi-range: whole file
    assert r.status_code == 200 and len(r.content) == size
    for bad in (f"bytes={size}-", "bytes=500-100", "bytes=abc", "bytes=-0", "bytes=-"):
        r = get(client, call.id, "sup1", Range=bad)
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{size}"
        assert r.json()["error"]["code"] == "range_not_satisfiable"
    r = client.head(
        f"/api/recordings/{call.id}/audio", headers={"X-User": "sup1", "Range": "bytes=0-9"}
    )
    assert r.status_code == 206 and r.headers["content-length"] == "10" and r.content == b""
    rows = logs(engine, call.id)
    assert [x.status_code for x in rows] == [
        200,
        206,
        206,
        206,
        206,
        200,
        416,
        416,
        416,
        416,
        416,
        206,
    ]
    assert (rows[1].range_start, rows[1].range_end) == (0, 99)
    assert all(x.username == "sup1" and x.role == "supervisor" for x in rows)


def test_who_may_listen(world, engine):
    client, call, vm = world
    allowed = {"admin1", "sup1", "lead1", "zhangmin", "hand_scjg"}
    for user in USERS:
        r = get(client, call.id, user)
        if user in allowed:
            assert r.status_code == 200, user
        elif user == "hand_swj":
            assert r.status_code == 404, user  # another department: must not learn it exists
        else:
            assert r.status_code == 403, user
            assert r.json()["error"]["code"] == "forbidden"
    # voicemail: not linked to a ticket → handlers cannot; agents can (they return callbacks)
    assert get(client, vm.id, "liqiang").status_code == 200
    assert get(client, vm.id, "hand_scjg").status_code == 404
    assert get(client, vm.id, "disp1").status_code == 403
    # every request was logged, refusals included
    rows = logs(engine, call.id)
    assert len(rows) == len(USERS)
    assert {r.username: r.status_code for r in rows}["liqiang"] == 403
    assert get(client, 99999, "admin1").status_code == 404
    assert client.get(f"/api/recordings/{call.id}/audio").status_code == 401


def test_metadata_and_audit_routes(world):
    client, call, _ = world
    r = client.get(f"/api/recordings/{call.id}", headers={"X-User": "zhangmin"})
    assert r.status_code == 200 and r.json()["call_id"] == "1795569321.1"
    assert (
        client.get(f"/api/recordings/{call.id}", headers={"X-User": "liqiang"}).status_code == 403
    )
    get(client, call.id, "zhangmin", Range="bytes=0-9")
    audit = client.get(f"/api/recordings/{call.id}/playbacks", headers={"X-User": "admin1"})
    assert audit.status_code == 200 and audit.json()[0]["range"] == [0, 9]
    assert (
        client.get(
            f"/api/recordings/{call.id}/playbacks", headers={"X-User": "zhangmin"}
        ).status_code
        == 403
    )


def test_purged_recording_is_gone(world, engine, settings):
    from recordings.store import purge_expired

    client, call, _ = world
    with session_scope(engine) as s:
        s.get(Ticket, call.ticket_id).status = "closed"
    with session_scope(engine) as s:
        purge_expired(s, settings, now=call.expires_at)
    assert get(client, call.id, "admin1").status_code == 410


def test_parse_range_unit():
    assert parse_range(None, 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=2-4", 10) == ByteRange(2, 4)
    assert parse_range("bytes=-3", 10) == ByteRange(7, 9)
    assert parse_range("bytes=-30", 10) == ByteRange(0, 9)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)
