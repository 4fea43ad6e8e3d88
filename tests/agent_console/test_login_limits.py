"""Addresses no one can spoof and logins that cannot be sprayed or starve the process:
X-Forwarded-For believed only from settings.trusted_proxies; login limited per (address, user),
per address and per account; the password checked outside any transaction, a bounded number at
once. Over a real uvicorn started with the options `callcenter web` uses (Settings.proxy_options)."""

from __future__ import annotations

import asyncio
import threading

import httpx
from console_helpers import PASSWORD, assert_error, fresh_window, make_client, seed, serve

from agent_console import create_app, security
from agent_console.routes import auth as auth_routes

PUBLIC = {"channel": "web", "content": "营业执照怎么办理？", "submitter_phone": "13800138000"}


def _limited(r: httpx.Response, scope: str) -> None:
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert err["details"]["scope"] == scope, err
    assert "登录尝试过于频繁" in err["message"], err
    assert int(r.headers["Retry-After"]) >= 1


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(settings, engine):
    seed(engine, settings)
    s = settings.model_copy(update={"public_rate_limit_per_minute": 3})
    assert s.proxy_options() == {"proxy_headers": False}
    fresh_window()
    with serve(create_app(s), **s.proxy_options()) as base, httpx.Client(base_url=base) as c:
        codes = [
            c.post(
                "/api/v1/public/tickets", json=PUBLIC, headers={"X-Forwarded-For": f"10.0.0.{i}"}
            ).status_code
            for i in range(5)
        ]
    assert codes == [201, 201, 201, 429, 429], codes

    # behind a proxy named in settings, each forwarded client is counted on its own
    trusted = s.model_copy(update={"trusted_proxies": ["127.0.0.1"]})
    with (
        serve(create_app(trusted), **trusted.proxy_options()) as base,
        httpx.Client(base_url=base) as c,
    ):
        codes = [
            c.post(
                "/api/v1/public/tickets", json=PUBLIC, headers={"X-Forwarded-For": f"10.1.0.{i}"}
            ).status_code
            for i in range(5)
        ]
    assert codes == [201] * 5, codes


def test_trusted_proxies_from_the_environment(monkeypatch):
    from config.settings import Settings

    monkeypatch.setenv("CALLCENTER_TRUSTED_PROXIES", "10.0.0.5, 10.0.1.0/24")
    s = Settings()
    assert s.trusted_proxies == ["10.0.0.5", "10.0.1.0/24"]
    assert s.proxy_options() == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.5,10.0.1.0/24",
    }


def test_one_address_cannot_spray_many_usernames(settings, engine):
    seed(engine, settings)
    s = settings.model_copy(update={"login_address_rate_limit_per_minute": 5})
    fresh_window()
    with make_client(s) as c:
        for i in range(5):
            r = c.post("/api/v1/auth/login", json={"username": f"nobody{i}", "password": "x" * 8})
            assert_error(r, 401)
        _limited(
            c.post("/api/v1/auth/login", json={"username": "agent", "password": PASSWORD}),
            "login-address",
        )


def test_one_account_cannot_be_guessed_from_many_addresses(settings, engine):
    seed(engine, settings)
    s = settings.model_copy(
        update={"login_account_rate_limit_per_minute": 4, "trusted_proxies": ["127.0.0.1"]}
    )
    fresh_window()
    with serve(create_app(s), **s.proxy_options()) as base, httpx.Client(base_url=base) as c:

        def login(i: int, password: str) -> httpx.Response:
            return c.post(
                "/api/v1/auth/login",
                json={"username": "Agent", "password": password},
                headers={"X-Forwarded-For": f"10.2.0.{i}"},
            )

        for i in range(4):
            assert_error(login(i, "wrong-password"), 401)
        _limited(login(10, "wrong-password"), "login-account")
        _limited(login(11, PASSWORD), "login-account")  # until the window ends


def test_password_is_checked_outside_any_transaction_and_a_few_at_once(
    settings, engine, monkeypatch
):
    """No pooled connection (on SQLite: no writer lock) is held while Argon2 runs, and at most
    security.HASH_SLOTS checks run at once however many logins arrive."""
    seed(engine, settings)
    s = settings.model_copy(
        update={
            "login_address_rate_limit_per_minute": 1000,
            "login_account_rate_limit_per_minute": 1000,
        }
    )
    app = create_app(s)
    lock = threading.Lock()
    running, seen = 0, {"max": 0, "checked_out": []}
    real = security.verify_password

    def verify(password_hash: str, password: str) -> bool:
        nonlocal running
        with lock:
            running += 1
            seen["max"] = max(seen["max"], running)
            seen["checked_out"].append(app.state.engine.pool.checkedout())
        try:
            return real(password_hash, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(security, "verify_password", verify)
    monkeypatch.setattr(auth_routes, "verify_password", verify, raising=False)
    fresh_window()
    with serve(app) as base:
        r = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "agent", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        assert seen["checked_out"] == [0]  # alone, nothing held a connection meanwhile

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                rs = await asyncio.gather(
                    *(
                        c.post(
                            "/api/v1/auth/login",
                            json={"username": u, "password": PASSWORD},
                        )
                        for u in ["admin", "agent", "dispatcher", "supervisor", "leader"] * 2
                    )
                )
                return [r.status_code for r in rs]

        assert asyncio.run(burst()) == [200] * 10
    assert 1 <= seen["max"] <= security.HASH_SLOTS, seen
