"""Recording playback through the real web app: real login tokens, the role matrix, the
per-recording rules of recordings.yaml, byte ranges and the audit log (the router factory's own
rules are tested in tests/recordings; this is the running system's mount of it)."""

from __future__ import annotations

import os
from pathlib import Path

from console_helpers import DEPT_A, assert_error
from sqlmodel import select

from config.database import session_scope
from recordings.models import PlaybackLog
from recordings.store import import_monitor
from ticketing.intake import submit
from ticketing.schemas import TicketIn

_SHARED = Path(__file__).resolve().parents[3] / "shared"
if not _SHARED.exists():
    _SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
MONITOR = _SHARED / "fixtures/ami/pbx-side/monitor/dxe-20261125-091531-13800138000-1795569321.1.wav"


def test_playback_through_the_app(api):
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
    url = f"/api/v1/recordings/{rid}/audio"
    data = MONITOR.read_bytes()

    r = api.client.get(url, headers={**api.auth("agent"), "Range": "bytes=44-1043"})
    assert r.status_code == 206 and r.content == data[44:1044]
    assert r.headers["content-range"] == f"bytes 44-1043/{len(data)}"
    r = api.client.get(url, headers=api.auth("handler"))  # the ticket is at their department
    assert r.status_code == 200 and r.content == data
    assert_error(api.client.get(url, headers=api.auth("handler_b")), 404)  # not theirs, unseen
    assert_error(api.client.get(url, headers=api.auth("dispatcher")), 403)  # recordings.yaml
    api.client.cookies.clear()  # the logins above left a session cookie
    assert api.client.get(url).status_code == 401

    audit = api.client.get(f"/api/v1/recordings/{rid}/playbacks", headers=api.auth("supervisor"))
    assert audit.status_code == 200
    assert [(e["username"], e["status"], e["range"]) for e in audit.json()] == [
        ("agent", 206, [44, 1043]),
        ("handler", 200, None),
        ("handler_b", 404, None),
        ("dispatcher", 403, None),
    ]
    assert_error(
        api.client.get(f"/api/v1/recordings/{rid}/playbacks", headers=api.auth("agent")), 403
    )


def test_the_policy_file_decides_who_listens(api, tmp_path):
    """recordings.yaml says a dispatcher may listen once its line is uncommented: that must be all
    it takes (the web layer's role matrix must not refuse them before the policy is read)."""
    from console_helpers import PASSWORD, make_client

    bundled = Path(__file__).resolve().parents[2] / "config" / "defaults" / "recordings.yaml"
    text = bundled.read_text(encoding="utf-8")
    assert "  # dispatcher: all" in text
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "recordings.yaml").write_text(
        text.replace("  # dispatcher: all", "  dispatcher: all"), encoding="utf-8"
    )
    st = api.settings.model_copy(update={"config_dir": cfg})
    with session_scope(api.engine) as s:
        rid = import_monitor(s, st, MONITOR).recording.id
    with make_client(st) as client:
        login = client.post(
            "/api/v1/auth/login", json={"username": "dispatcher", "password": PASSWORD}
        )
        token = login.json()["access_token"]
        r = client.get(
            f"/api/v1/recordings/{rid}/audio", headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 200 and r.content == MONITOR.read_bytes()
    with session_scope(api.engine, read_only=True) as s:
        (log,) = s.exec(select(PlaybackLog).where(PlaybackLog.recording_id == rid)).all()
    assert (log.username, log.status_code) == ("dispatcher", 200)


def test_playback_checks_the_account_in_its_own_transaction(api):
    """The audio routes read their user in the playback's write transaction (deps.require_bearer,
    user_in_session): a revoked or deactivated account is still refused with 401 and leaves no
    audit row, a bad id is a 422 (the path is checked before the account), and HEAD alike."""
    from ticketing import User

    with session_scope(api.engine) as s:
        rid = import_monitor(s, api.settings, MONITOR, agent="agent").recording.id
    url = f"/api/v1/recordings/{rid}/audio"
    agent, handler = api.auth("agent"), api.auth("handler")
    assert api.client.get(url, headers={**agent, "Range": "bytes=0-99"}).status_code == 206
    with session_scope(api.engine) as s:
        s.exec(select(User).where(User.username == "agent")).one().active = False
    api.client.cookies.clear()
    assert_error(api.client.get(url, headers=agent), 401)
    assert api.client.head(url, headers=agent).status_code == 401
    assert_error(api.client.get(f"/api/v1/recordings/{2**31}/audio", headers=agent), 422)
    with session_scope(api.engine) as s:
        s.exec(select(User).where(User.username == "agent")).one().active = True
        s.exec(select(User).where(User.username == "handler")).one().token_version += 1
    api.client.cookies.clear()
    assert_error(api.client.get(url, headers=handler), 401)  # a token of the old version
    with session_scope(api.engine, read_only=True) as s:
        rows = s.exec(select(PlaybackLog).where(PlaybackLog.recording_id == rid)).all()
    assert [(r.username, r.status_code) for r in rows] == [("agent", 206)]
