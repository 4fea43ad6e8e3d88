"""Bad input gets a 4xx with a Chinese message, never a 5xx or a false "database unavailable";
and text is validated after the one normalising rule (ticketing.text), so empty means empty."""

from __future__ import annotations

import json
import time

import pytest
from console_helpers import DEPT_A, assert_error, make_client, seed
from sqlmodel import select

from config.database import session_scope
from recordings.models import Recording
from ticketing import SubOrder, Ticket, TicketIn, accept, submit
from ticketing.handoff import sign
from ticketing.text import normalise_text

SECRET = "handoff-shared-secret"
ZW = "\u200b\u200c\u200d\ufeff\u2060"


def _suborder(api, *, accepted: bool = False) -> int:
    with session_scope(api.engine) as s:
        t = submit(
            s,
            TicketIn(channel="web", content="营业执照变更咨询", departments=[DEPT_A]),
            settings=api.settings,
            actor="test",
        )
        s.flush()
        so = s.exec(select(SubOrder).where(SubOrder.ticket_id == t.id)).one()
        if accepted:
            accept(s, api.settings, so.id, actor="handler")
        return so.id


def _chinese(err: dict) -> None:
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err["message"]), err


def test_the_normalising_rule():
    assert normalise_text(f" {ZW}\x00\x07 \u3000") == ""
    assert normalise_text("a\x00b\u200bc\n第二行\t") == "abc\n第二行"
    assert normalise_text(None) == ""


def test_nul_in_a_search_term_is_the_clients_error(api):
    for q in ("营业执\x00照", "abc\x00def", "执照 \x00\x00\x00"):
        r = api.client.get("/api/v1/tickets", params={"q": q}, headers=api.auth("dispatcher"))
        err = assert_error(r, 422)
        _chinese(err)


def test_non_finite_numbers_in_channel_data(api):
    for raw in ("NaN", "Infinity", "-Infinity"):
        body = (
            '{"channel": "web", "content": "营业执照怎么办理", "send_notice": false, '
            f'"channel_data": {{"score": {raw}}}}}'
        )
        r = api.client.post(
            "/api/v1/tickets",
            content=body.encode(),
            headers={**api.auth("agent"), "content-type": "application/json"},
        )
        _chinese(assert_error(r, 422))
    assert api.count(Ticket) == 0


def test_only_invisible_content_files_no_ticket(api, settings):
    r = api.client.post(
        "/api/v1/tickets",
        json={"channel": "web", "content": ZW * 3, "send_notice": False},
        headers=api.auth("agent"),
    )
    _chinese(assert_error(r, 422))
    r = api.client.post(
        "/api/v1/public/tickets",
        json={"channel": "web", "content": ZW + "\x00 \u3000", "submitter_phone": "13800138000"},
    )
    _chinese(assert_error(r, 422))
    assert api.count(Ticket) == 0


def test_a_reply_of_control_characters_resolves_nothing(api):
    so = _suborder(api, accepted=True)
    for text in ("\x00\x00\x00", "\x01\x02\x1f", ZW, "\x00" + ZW + " \t"):
        r = api.client.post(
            f"/api/v1/suborders/{so}/reply", json={"text": text}, headers=api.auth("handler")
        )
        _chinese(assert_error(r, 422))
    with session_scope(api.engine, read_only=True) as s:
        assert s.get(SubOrder, so).status == "accepted"


def test_handoff_callback_bad_signature_header_and_huge_id(settings, engine):
    seed(engine, settings)
    s = settings.model_copy(update={"handoff_secret": SECRET})
    with make_client(s) as c:

        def post(payload: dict, signature: str | bytes | None = None):
            body = json.dumps(payload).encode()
            ts = str(int(time.time()))  # fresh: the window is not what is tested here
            sig = signature if signature is not None else sign(SECRET.encode(), body, ts)
            return c.post(
                "/api/v1/handoff/callback",
                content=body,
                headers={
                    "content-type": "application/json",
                    "X-DXE-Signature": sig,
                    "X-DXE-Timestamp": ts,
                },
            )

        r = post({"suborder_id": 1, "status": "accepted"}, "sha256=签名".encode())
        _chinese(assert_error(r, 403))
        r = post({"suborder_id": 1, "status": "accepted"}, "sha256=\xe9\xff".encode("latin-1"))
        assert_error(r, 403)
        for sid in (2**70, 2**31, -5, 0):
            _chinese(assert_error(post({"suborder_id": sid, "status": "accepted"}), 422))


@pytest.mark.parametrize("path", ["../../../etc/passwd", "/etc/passwd", "2026/../../x.wav"])
def test_recording_path_outside_the_store_is_not_a_server_error(api, path):
    with session_scope(api.engine) as s:
        rec = Recording(
            kind="call",
            dedupe_key=f"x:{path}",
            path=path,
            duration_s=1.0,
            codec="pcm_s16le",
            sample_rate=8000,
            channels=1,
            bytes=100,
            sha256="0" * 64,
            agent="agent",
        )
        s.add(rec)
        s.flush()
        rid = rec.id
    r = api.client.get(f"/api/v1/recordings/{rid}/audio", headers=api.auth("admin"))
    _chinese(assert_error(r, 404))
    # the connection and the process are fine afterwards
    assert api.client.get("/healthz").status_code == 200


def test_database_unavailable_only_when_it_is(api, monkeypatch):
    """A statement error (SQLite raises OperationalError for those too) is not "database down"."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from agent_console.errors import database_unavailable

    def op(msg: str) -> OperationalError:
        return OperationalError("SELECT", {}, sqlite3.OperationalError(msg))

    assert database_unavailable(op("database is locked"))
    assert database_unavailable(op("unable to open database file"))
    assert database_unavailable(op("attempt to write a readonly database"))
    assert not database_unavailable(op('fts5: syntax error near ""'))
    assert not database_unavailable(op("no such column: x"))
