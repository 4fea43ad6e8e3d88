"""Issue #17 §6/§7 on the web tier: headers, vendored /docs, secret key length, password policy,
case-insensitive usernames, the last admin, failed-login logging, the data dir's modes."""

from __future__ import annotations

import os
import re
import stat

import pytest
import sqlalchemy as sa
from console_helpers import assert_error, make_client
from pydantic import ValidationError
from structlog.testing import capture_logs

from agent_console.security import warn_insecure_cookie
from config.database import session_scope
from config.datadir import secure_data_dir
from config.secret_key import ensure_secret_key
from config.settings import Settings
from ticketing import password_problem
from ticketing.models import User


def test_security_headers_on_api_and_errors(api):
    for r in (
        api.client.get("/api/v1/tickets", headers=api.auth("admin")),
        api.client.get("/api/v1/tickets/DXE-NOPE", headers=api.auth("admin")),  # 404
        api.client.get("/api/v1/tickets"),  # 401
        api.client.get("/healthz"),
    ):
        h = r.headers
        assert h["x-content-type-options"] == "nosniff", r.url
        assert h["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store"


def test_docs_are_served_from_vendored_assets(api):
    r = api.client.get("/docs")
    assert r.status_code == 200 and "swagger-ui" in r.text
    srcs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
    assert srcs and all(s.startswith("/") for s in srcs), srcs  # nothing from another origin
    assert "cdn" not in r.text.lower()
    for s in srcs:
        asset = api.client.get(s)
        assert asset.status_code == 200 and len(asset.content) > 100, s
        assert "no-store" not in asset.headers.get("cache-control", "")  # cacheable
    assert api.client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_secret_key_under_32_bytes_is_refused(tmp_path):
    for short in ("x", "a" * 31):
        with pytest.raises(ValidationError, match="at least 32"):
            Settings(data_dir=tmp_path, secret_key=short)
    assert Settings(data_dir=tmp_path, secret_key="k" * 32).secret_key is not None
    # a short key left in the data dir is refused as well, not used
    (tmp_path / "secret_key").write_text("short")
    with pytest.raises(RuntimeError, match="at least 32"):
        ensure_secret_key(Settings(data_dir=tmp_path))


@pytest.mark.parametrize(
    "password",
    [" " * 12, "\x00" * 12, " \x00\t \u200b" * 3, "password123", "12345678", "Qwerty123"],
)
def test_weak_passwords_are_refused(api, password):
    r = api.client.post(
        "/api/v1/users",
        json={"username": "newbie", "password": password, "role": "agent"},
        headers=api.auth("admin"),
    )
    assert_error(r, 422, "weak_password")
    r = api.client.patch(
        f"/api/v1/users/{api.user_ids['agent']}",
        json={"password": password},
        headers=api.auth("admin"),
    )
    assert_error(r, 422, "weak_password")
    assert password_problem("绿色的马儿跑得快-2026") is None


def test_usernames_differing_only_in_case_cannot_coexist(api):
    r = api.client.post(
        "/api/v1/users",
        json={"username": "Zhang.Wei", "password": "a-long-unusual-pass", "role": "agent"},
        headers=api.auth("admin"),
    )
    assert r.status_code == 201, r.text
    for name in ("zhang.wei", "ZHANG.WEI", "Admin"):
        r = api.client.post(
            "/api/v1/users",
            json={"username": name, "password": "a-long-unusual-pass", "role": "agent"},
            headers=api.auth("admin"),
        )
        assert_error(r, 409, "username_taken")
    # the database refuses it too (a second web process, a script)
    with pytest.raises(sa.exc.IntegrityError), session_scope(api.engine) as s:
        s.add(User(username="ZHANG.wei", password_hash="x", role="agent"))
        s.flush()


def test_the_last_active_admin_cannot_deactivate_or_demote_itself(api):
    me = api.user_ids["admin"]
    h = api.auth("admin")
    for change in ({"active": False}, {"role": "agent"}, {"role": "leader", "active": False}):
        r = api.client.patch(f"/api/v1/users/{me}", json=change, headers=h)
        assert_error(r, 409, "last_admin")
    assert api.client.get("/api/v1/auth/me", headers=h).json()["role"] == "admin"
    # with a second active admin it may step down
    r = api.client.post(
        "/api/v1/users",
        json={"username": "admin2", "password": "another-long-pass", "role": "admin"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    r = api.client.patch(f"/api/v1/users/{me}", json={"role": "supervisor"}, headers=h)
    assert r.status_code == 200, r.text
    # and the other one is now the last
    r = api.client.post(
        "/api/v1/auth/login", json={"username": "admin2", "password": "another-long-pass"}
    )
    h2 = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = api.client.patch(
        f"/api/v1/users/{r.json()['user']['id']}", json={"active": False}, headers=h2
    )
    assert_error(r, 409, "last_admin")


def test_failed_login_is_logged_with_the_client_address(api):
    with capture_logs() as logs:
        r = api.client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"}
        )
    assert r.status_code == 401
    failed = [e for e in logs if e["event"] == "login_failed"]
    assert failed and failed[0]["client"] == "testclient" and failed[0]["username"] == "admin"


def test_warning_when_https_and_the_cookie_is_not_secure(tmp_path):
    with capture_logs() as logs:
        assert warn_insecure_cookie(
            Settings(data_dir=tmp_path, public_base_url="https://hotline.example.cn")
        )
        assert not warn_insecure_cookie(
            Settings(
                data_dir=tmp_path, public_base_url="https://hotline.example.cn", cookie_secure=True
            )
        )
        assert not warn_insecure_cookie(Settings(data_dir=tmp_path))
    assert [e["event"] for e in logs] == ["session_cookie_not_secure"]


def _mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_data_dir_is_private_after_start(settings, engine, tmp_path):
    data = tmp_path / "private-var"
    old = os.umask(0o022)
    try:
        (data / "recordings" / "2026").mkdir(parents=True, mode=0o755)
        (data / "recordings" / "2026" / "call.wav").write_bytes(b"RIFF")
        (data / "redis.rdb").write_bytes(b"REDIS")
        os.chmod(data, 0o755)
        s2 = settings.model_copy(update={"data_dir": data, "secret_key": None})
        with make_client(s2) as client:
            assert client.get("/healthz").status_code in (200, 503)
    finally:
        os.umask(old)
    assert _mode(data) == 0o700
    assert _mode(data / "recordings") == 0o700 and _mode(data / "recordings" / "2026") == 0o700
    for f in ("secret_key", "redis.rdb", "recordings/2026/call.wav"):
        assert _mode(data / f) == 0o600, f
    assert secure_data_dir(data) == 0  # nothing left to tighten
