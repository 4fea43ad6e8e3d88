"""agent_console.fastpath serves POST /api/v1/tickets without the router: every answer must be the
router's own, case by case (status, error body, headers), and the fast path must really serve it.

Two apps over the same database and settings: the production one (fast path on) and one with
the fast path off, where FastAPI's router serves the same route function.
"""

from __future__ import annotations

import json

import pytest
from console_helpers import PASSWORD, seed
from fastapi.testclient import TestClient

from agent_console import create_app
from agent_console.fastpath import FastPath
from agent_console.security import COOKIE_NAME, CSRF_HEADER
from ticketing.models import Ticket

PATH = "/api/v1/tickets"


def _body(call_id: str, **extra) -> dict:
    return {
        "channel": "hotline",
        "content": "企业开办营业执照怎么网上办理？",
        "submitter_phone": "13800138000",
        "channel_data": {"call_id": call_id},
        "send_notice": False,
        **extra,
    }


class _Recorder:
    """Wraps what FastPath hands on: the (method, path) of every request that reached the router."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def _fast_path_of(app) -> FastPath:
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, FastPath):
        layer = getattr(layer, "app", None)
    assert layer is not None, "the production app has no FastPath"
    return layer


@pytest.fixture
def pair(settings, engine):
    seed(engine, settings)
    with (
        TestClient(create_app(settings), raise_server_exceptions=False) as fast,
        TestClient(create_app(settings, fast_path=False), raise_server_exceptions=False) as slow,
    ):
        recorder = _Recorder(_fast_path_of(fast.app).app)
        _fast_path_of(fast.app).app = recorder
        yield fast, slow, recorder, engine


def _login(client: TestClient, username: str) -> str:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _same(a, b) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"]
    assert a.headers.get("retry-after") == b.headers.get("retry-after")
    assert a.headers.get("x-request-id") and b.headers.get("x-request-id")
    ja, jb = a.json(), b.json()
    if a.status_code == 201:
        assert set(ja) == set(jb)
        for key in ("channel", "status", "category", "urgency", "suggested_department"):
            assert ja[key] == jb[key], key
    else:
        assert ja == jb


def test_every_answer_is_the_routers(pair):
    fast, slow, recorder, _engine = pair
    tokens = {c: {u: _login(c, u) for u in ("agent", "leader")} for c in (fast, slow)}

    def bearer(c, user):
        return {"Authorization": f"Bearer {tokens[c][user]}"}

    cases = [
        ("created", lambda c, t: c.post(PATH, json=_body(f"fp-{t}"), headers=bearer(c, "agent"))),
        ("repeat", lambda c, t: c.post(PATH, json=_body(f"fp-{t}"), headers=bearer(c, "agent"))),
        ("no token", lambda c, t: c.post(PATH, json=_body(f"fp-x{t}"))),
        (
            "basic auth",
            lambda c, t: c.post(PATH, json=_body("x"), headers={"Authorization": "Basic eDp5"}),
        ),
        (
            "forged",
            lambda c, t: c.post(PATH, json=_body("x"), headers={"Authorization": "Bearer a.b"}),
        ),
        ("role", lambda c, t: c.post(PATH, json=_body("x"), headers=bearer(c, "leader"))),
        (
            "not json",
            lambda c, t: c.post(
                PATH, content=b'{"channel": ', headers={**bearer(c, "agent"), "content-type": "a/j"}
            ),
        ),
        (
            "bad field",
            lambda c, t: c.post(
                PATH, json=_body("x", channel="telegraph"), headers=bearer(c, "agent")
            ),
        ),
        (
            "refused",
            lambda c, t: c.post(
                PATH, json=_body("x", submitter_phone="call me"), headers=bearer(c, "agent")
            ),
        ),
        (
            "too large",
            lambda c, t: c.post(
                PATH, json=_body("x", content="长" * 2_000_000), headers=bearer(c, "agent")
            ),
        ),
        (
            "cookie, no CSRF header",
            lambda c, t: c.post(
                PATH,
                content=json.dumps(_body(f"fp-c{t}")),
                headers={"cookie": f"{COOKIE_NAME}={tokens[c]['agent']}"},
            ),
        ),
        (
            "cookie with CSRF header",
            lambda c, t: c.post(
                PATH,
                content=json.dumps(_body(f"fp-c{t}")),
                headers={"cookie": f"{COOKIE_NAME}={tokens[c]['agent']}", CSRF_HEADER: "1"},
            ),
        ),
        ("GET is the list", lambda c, t: c.get(PATH, headers=bearer(c, "agent"))),
        ("PUT", lambda c, t: c.put(PATH, json=_body("x"), headers=bearer(c, "agent"))),
        (
            "trailing slash",
            lambda c, t: c.post(
                PATH + "/", json=_body("x"), headers=bearer(c, "agent"), follow_redirects=False
            ),
        ),
    ]
    for name, send in cases:
        a, b = send(fast, "f"), send(slow, "s")
        try:
            if name == "GET is the list":
                assert a.status_code == b.status_code == 200
                assert set(a.json()) == set(b.json())
            elif name == "trailing slash":
                assert a.status_code == b.status_code and a.text == b.text
            else:
                _same(a, b)
        except AssertionError as e:
            raise AssertionError(f"case {name!r}: {e}") from e

    # the fast path answered the POSTs to the route itself; everything else reached the router
    assert ("POST", PATH) not in recorder.seen
    assert ("GET", PATH) in recorder.seen
    assert ("PUT", PATH) in recorder.seen
    assert ("POST", PATH + "/") in recorder.seen


def test_fast_path_tickets_are_counted_under_the_routes_label(pair):
    fast, _slow, _recorder, _engine = pair
    token = _login(fast, "agent")
    r = fast.post(PATH, json=_body("fp-metrics"), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    admin = _login(fast, "admin")
    metrics = fast.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    line = next(
        (
            ln
            for ln in metrics.splitlines()
            if ln.startswith("callcenter_http_requests_total{")
            and 'method="POST"' in ln
            and f'route="{PATH}"' in ln
            and 'status="201"' in ln
        ),
        None,
    )
    assert line is not None and float(line.rsplit(" ", 1)[1]) >= 1.0, metrics[:2000]


def test_database_errors_answer_as_the_router_does(pair, monkeypatch):
    """An exception with no handler of its own (here a bug in the writer) is the app's 500."""
    fast, slow, _recorder, engine = pair
    for client in (fast, slow):

        async def broken(body, bearer):
            raise RuntimeError("boom")

        monkeypatch.setattr(client.app.state.intake, "submit", broken)
    token_f, token_s = _login(fast, "agent"), _login(slow, "agent")
    a = fast.post(PATH, json=_body("b1"), headers={"Authorization": f"Bearer {token_f}"})
    b = slow.post(PATH, json=_body("b2"), headers={"Authorization": f"Bearer {token_s}"})
    assert a.status_code == b.status_code == 500
    assert a.json()["error"]["code"] == b.json()["error"]["code"] == "internal_error"
    assert a.headers["x-request-id"] == a.json()["error"]["details"]["request_id"]
    from sqlmodel import func, select

    from config.database import session_scope

    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 0
