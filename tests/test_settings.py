"""Settings from the environment: the PBX list by index or as JSON, and nothing read from bare
variables such as USERNAME or HOST that every shell has."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings


def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("CALLCENTER_"):
            monkeypatch.delenv(k)


def test_pbx_fields_by_index(monkeypatch):
    _clean(monkeypatch)
    monkeypatch.setenv("CALLCENTER_ASTERISK__0__SECRET", "s3cret")
    monkeypatch.setenv("CALLCENTER_ASTERISK__0__SPOOL_DIR", "/mnt/pbx1")
    monkeypatch.setenv("CALLCENTER_ASTERISK__1__NAME", "pbx2")
    monkeypatch.setenv("CALLCENTER_ASTERISK__1__HOST", "10.0.0.6")
    a, b = Settings().asterisk
    assert (a.name, a.secret.get_secret_value(), a.spool_dir) == (
        "pbx1",
        "s3cret",
        Path("/mnt/pbx1"),
    )
    assert (b.name, b.host, b.spool_dir) == ("pbx2", "10.0.0.6", None)


def test_pbx_list_as_json_and_bare_variables_ignored(monkeypatch):
    _clean(monkeypatch)
    monkeypatch.setenv("USERNAME", "someone")
    monkeypatch.setenv("HOST", "elsewhere")
    monkeypatch.setenv("SECRET", "leak")
    (a,) = Settings().asterisk
    assert (a.username, a.host, a.secret.get_secret_value()) == ("callcenter", "127.0.0.1", "")
    monkeypatch.setenv("CALLCENTER_ASTERISK", '[{"name": "east", "port": 5039}]')
    (e,) = Settings().asterisk
    assert (e.name, e.port) == ("east", 5039)


def test_bad_pbx_setting_is_a_clear_error(monkeypatch):
    _clean(monkeypatch)
    monkeypatch.setenv("CALLCENTER_ASTERISK__0__PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_job_snapshot_never_carries_credentials(monkeypatch):
    _clean(monkeypatch)
    plain = Settings(
        database_url="postgresql+psycopg://app@db/hotline", redis_url="redis://r:6379/0"
    )
    snap = plain.job_snapshot("public_base_url")
    assert snap["database_url"] == "postgresql+psycopg://app@db/hotline"
    assert snap["redis_url"] == "redis://r:6379/0" and "public_base_url" in snap
    secret = Settings(
        database_url="postgresql+psycopg://app:pw-123@db/hotline",
        redis_url="redis://:redis-pw@r:6379/0",
        handoff_secret="hmac-secret",
    )
    snap = secret.job_snapshot()
    assert "database_url" not in snap and "redis_url" not in snap
    assert "pw-123" not in str(snap) and "hmac-secret" not in str(snap)
    assert snap["redis_namespace"] == "dxe"


def test_same_secret_compares_what_a_client_sends_without_raising():
    """compare_digest raises TypeError on non-ASCII str; same_secret says False instead."""
    from config.secret_key import same_secret

    assert same_secret("abc", "abc") and same_secret(b"abc", "abc") and same_secret("令牌", "令牌")
    for given in ("abd", "１２３", "\u200b", "", None, 123, ["abc"], "abc\x00"):
        assert not same_secret(given, "abc"), given
    assert not same_secret("\ud800", "abc")  # a lone surrogate (a form can't, a caller might)


def test_the_public_url_follows_the_port_unless_set(monkeypatch):
    """Links in texts and notices, and Twilio's signatures, use the public URL: unset, it is the
    service's own address, so a service on another port does not send citizens to port 8000."""
    for name in ("CALLCENTER_PUBLIC_BASE_URL", "CALLCENTER_HOST", "CALLCENTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().public_base_url == "http://127.0.0.1:8000"
    monkeypatch.setenv("CALLCENTER_PORT", "18631")
    assert Settings().public_base_url == "http://127.0.0.1:18631"
    monkeypatch.setenv("CALLCENTER_HOST", "0.0.0.0")
    assert Settings().public_base_url == "http://127.0.0.1:18631"
    monkeypatch.setenv("CALLCENTER_HOST", "::1")
    assert Settings().public_base_url == "http://[::1]:18631"
    monkeypatch.setenv("CALLCENTER_PUBLIC_BASE_URL", "https://12345.example.gov.cn")
    assert Settings().public_base_url == "https://12345.example.gov.cn"
