"""Login, bearer + cookie sessions, CSRF, expiry, revocation, argon2 storage, secret key file."""

from __future__ import annotations

import os
import stat

from console_helpers import PASSWORD, assert_error, fresh_window, make_client, seed
from sqlmodel import select

from agent_console.security import COOKIE_NAME, issue_token, read_token
from config.database import session_scope
from ticketing.models import User


def test_login_returns_token_and_httponly_cookie(api):
    r = api.client.post("/api/v1/auth/login", json={"username": "agent", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["user"]["role"] == "agent"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE_NAME}={body['access_token']}" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # cookie_secure is off in tests
    me = api.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["username"] == "agent"
    assert "password" not in str(me.json())


def test_secure_cookie_when_configured(settings, engine):
    seed(engine, settings)
    with make_client(settings.model_copy(update={"cookie_secure": True})) as c:
        r = c.post("/api/v1/auth/login", json={"username": "agent", "password": PASSWORD})
        assert "Secure" in r.headers["set-cookie"]


def test_passwords_are_stored_as_argon2_hashes(api):
    with session_scope(api.engine, read_only=True) as s:
        for u in s.exec(select(User)):
            assert u.password_hash.startswith("$argon2id$")
            assert PASSWORD not in u.password_hash


def test_bad_credentials_are_401_in_the_error_shape(api):
    for body in (
        {"username": "agent", "password": "wrong-password"},
        {"username": "nobody", "password": PASSWORD},
    ):
        r = api.client.post("/api/v1/auth/login", json=body)
        assert_error(r, 401, "bad_credentials")
        assert "set-cookie" not in r.headers


def test_unauthenticated_and_garbage_tokens_are_401(api):
    assert_error(api.client.get("/api/v1/auth/me"), 401, "unauthorized")
    for header in ("Bearer nonsense", "Bearer v1.e30.AAAA", "Basic YWRtaW46eA==", "Bearer "):
        r = api.client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert_error(r, 401)
        assert r.headers.get("www-authenticate") == "Bearer"


def test_token_signed_with_another_key_is_rejected(api):
    token, _ = issue_token(b"another-key", api.user_ids["admin"], 1, 3600)
    assert_error(
        api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}), 401
    )


def test_expired_token_is_rejected(api):
    key = api.client.app.state.secret_key
    token, _ = issue_token(key, api.user_ids["admin"], 1, -1)
    assert read_token(key, token) is None
    assert_error(
        api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}), 401
    )
    fresh, _ = issue_token(key, api.user_ids["admin"], 1, 60)
    ok = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200


def test_logout_revokes_every_token_and_clears_cookie(api):
    headers = api.auth("dispatcher")
    r = api.client.post("/api/v1/auth/logout", headers=headers)
    assert r.status_code == 200
    assert f'{COOKIE_NAME}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert_error(api.client.get("/api/v1/auth/me", headers=headers), 401)
    # a new login works again
    r = api.client.post("/api/v1/auth/login", json={"username": "dispatcher", "password": PASSWORD})
    assert r.status_code == 200


def test_cookie_session_and_csrf_header(api):
    token = api.token("admin")
    cookies = {COOKIE_NAME: token}
    c = api.client
    assert c.get("/api/v1/auth/me", cookies=cookies).status_code == 200
    # an unsafe request on the cookie alone is refused without the CSRF header, and writes nothing
    before = api.count(User)
    body = {"username": "new1", "password": "long-enough-pw", "role": "agent"}
    r = c.post("/api/v1/users", json=body, cookies=cookies)
    assert_error(r, 403, "csrf")
    assert api.count(User) == before
    r = c.post("/api/v1/users", json=body, cookies=cookies, headers={"X-Requested-With": "fetch"})
    assert r.status_code == 201, r.text
    # bearer clients need no CSRF header
    body["username"] = "new2"
    assert c.post("/api/v1/users", json=body, headers=api.auth("admin")).status_code == 201
    c.cookies.clear()


def test_password_reset_and_deactivation_revoke_tokens(api):
    agent_headers = api.auth("agent")
    agent_id = api.user_ids["agent"]
    r = api.client.patch(
        f"/api/v1/users/{agent_id}", json={"password": "a-new-password"}, headers=api.auth("admin")
    )
    assert r.status_code == 200
    assert_error(api.client.get("/api/v1/auth/me", headers=agent_headers), 401)
    r = api.client.post("/api/v1/auth/login", json={"username": "agent", "password": PASSWORD})
    assert_error(r, 401)
    r = api.client.post(
        "/api/v1/auth/login", json={"username": "agent", "password": "a-new-password"}
    )
    assert r.status_code == 200
    new_headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = api.client.patch(
        f"/api/v1/users/{agent_id}", json={"active": False}, headers=api.auth("admin")
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert_error(api.client.get("/api/v1/auth/me", headers=new_headers), 401)
    r = api.client.post(
        "/api/v1/auth/login", json={"username": "agent", "password": "a-new-password"}
    )
    assert_error(r, 401)


def test_role_change_revokes_tokens(api):
    headers = api.auth("leader")
    r = api.client.patch(
        f"/api/v1/users/{api.user_ids['leader']}", json={"role": "agent"}, headers=api.auth("admin")
    )
    assert r.status_code == 200 and r.json()["role"] == "agent"
    assert_error(api.client.get("/api/v1/auth/me", headers=headers), 401)


def test_user_admin_validation(api):
    admin = api.auth("admin")
    before = api.count(User)
    cases = [
        (
            {"username": "h1", "password": "long-enough-pw", "role": "handler"},
            "department_required",
        ),
        (
            {
                "username": "h1",
                "password": "long-enough-pw",
                "role": "handler",
                "department_code": "NOPE",
            },
            "unknown_department",
        ),
        ({"username": "h1", "password": "short", "role": "agent"}, "validation_error"),
        ({"username": "h1", "password": "long-enough-pw", "role": "king"}, "validation_error"),
        (
            {"username": "bad name!", "password": "long-enough-pw", "role": "agent"},
            "validation_error",
        ),
    ]
    for body, code in cases:
        assert_error(api.client.post("/api/v1/users", json=body, headers=admin), 422, code)
    dup = {"username": "agent", "password": "long-enough-pw", "role": "agent"}
    assert_error(api.client.post("/api/v1/users", json=dup, headers=admin), 409, "username_taken")
    assert api.count(User) == before
    assert_error(api.client.patch("/api/v1/users/999999", json={}, headers=admin), 404)
    listed = api.client.get("/api/v1/users", headers=admin).json()
    assert {u["username"] for u in listed} >= {"admin", "handler", "leader"}


def test_login_is_rate_limited_per_user_and_ip(api):
    fresh_window()
    codes = [
        api.client.post(
            "/api/v1/auth/login", json={"username": "leader", "password": "x"}
        ).status_code
        for _ in range(11)
    ]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    # another username from the same address is not locked out
    r = api.client.post("/api/v1/auth/login", json={"username": "agent", "password": PASSWORD})
    assert r.status_code == 200


def test_secret_key_generated_once_with_0600(settings, engine):
    seed(engine, settings)
    s2 = settings.model_copy(update={"secret_key": None})
    with make_client(s2) as c:
        path = s2.data_dir / "secret_key"
        assert path.exists()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        key = path.read_bytes()
        token = c.post(
            "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()["access_token"]
    with make_client(s2) as c:  # a second process/app reads the same key: the token still works
        assert path.read_bytes() == key
        assert (
            c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
