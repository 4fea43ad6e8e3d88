"""tickets.create checks only the token on the event loop (deps.require_token); its user is checked
by the intake writer in the transaction that writes the ticket: revocation, deactivation, role and
CSRF checks must still hold on every request, with no caching in between."""

from __future__ import annotations

from sqlalchemy import update

from config.database import session_scope
from ticketing.models import Ticket, User

BODY = {
    "channel": "hotline",
    "content": "企业开办营业执照怎么网上办理？",
    "channel_data": {"call_id": "perf-create-1"},
    "send_notice": False,
}


def _set(api, username: str, **values) -> None:
    with session_scope(api.engine) as s:
        s.execute(update(User).where(User.username == username).values(**values))


def test_revocation_takes_effect_on_the_next_request(api):
    headers = api.auth("agent")
    r = api.client.post("/api/v1/tickets", json=BODY, headers=headers)
    assert r.status_code == 201, r.text
    assert not r.json()["number"].startswith("~")  # the real number, not the placeholder
    _set(api, "agent", token_version=User.token_version + 1)
    body = {**BODY, "channel_data": {"call_id": "perf-create-2"}}
    r = api.client.post("/api/v1/tickets", json=body, headers=headers)
    assert r.status_code == 401, r.text
    assert api.count(Ticket) == 1


def test_deactivated_user_and_lost_role_are_refused(api):
    headers = api.auth("dispatcher")
    assert api.client.post("/api/v1/tickets", json=BODY, headers=headers).status_code == 201
    _set(api, "dispatcher", role="leader")  # leaders may not create tickets
    body = {**BODY, "channel_data": {"call_id": "perf-create-3"}}
    r = api.client.post("/api/v1/tickets", json=body, headers=headers)
    assert r.status_code == 403, r.text
    _set(api, "dispatcher", role="dispatcher", active=False)
    r = api.client.post("/api/v1/tickets", json=body, headers=headers)
    assert r.status_code == 401, r.text
    assert api.count(Ticket) == 1


def test_cookie_auth_needs_the_csrf_header(api):
    token = api.token("agent")
    api.client.cookies.set("dxe_session", token)
    try:
        r = api.client.post("/api/v1/tickets", json=BODY)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "csrf"
        r = api.client.post("/api/v1/tickets", json=BODY, headers={"X-Requested-With": "t"})
        assert r.status_code == 201, r.text
    finally:
        api.client.cookies.clear()


def test_revoked_token_gets_401_even_with_an_invalid_body(api):
    """Authentication still comes before body validation (the dependency runs first)."""
    headers = api.auth("agent")
    _set(api, "agent", token_version=User.token_version + 1)
    r = api.client.post("/api/v1/tickets", json={"channel": "nope"}, headers=headers)
    assert r.status_code == 401, r.text
