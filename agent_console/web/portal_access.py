"""Who may see what on the public portal, without accounts.

- CSRF: the portal has no session, so its forms use a double-submit token: a random cookie
  (SameSite=Strict, HttpOnly) that the form's hidden field must repeat.
- Following a matter: the holder of an SMS link (a single-purpose token, ticketing.notices) or of
  a one-time SMS code sent to the submitter's own phone gets a signed cookie naming that one
  ticket number, for `follow_grant_minutes`. Nothing else shows a matter to the public.
- SMS codes: 6 digits, stored in Redis as an HMAC digest (keyed with the app's secret) with a
  TTL; `max_tries` wrong codes void it; sending is rate-limited per ticket number and per client
  address, checking per address. A code is sent only when the number and phone match a matter
  and the phone is a mainland mobile, but the answer is the same either way (no enumeration).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis
from fastapi import Request
from fastapi.responses import Response

from agent_console.ratelimit import Limit, client_ip, hit_all
from config.loader import load_yaml
from config.secret_key import same_secret

CSRF_COOKIE = "dxe_portal_csrf"
CSRF_FIELD = "csrf_token"
FOLLOW_COOKIE = "dxe_follow"
PORTAL_PATH = "/portal"


def portal_cfg(settings: Any) -> dict[str, Any]:
    return load_yaml(settings, "portal.yaml")


# ---------------------------------------------------------------- CSRF (double submit)
def csrf_for(request: Request) -> tuple[str, bool]:
    """(token, newly made): the browser's portal CSRF token, or a new one to set."""
    have = request.cookies.get(CSRF_COOKIE, "")
    if len(have) == 43:
        return have, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=bool(request.app.state.settings.cookie_secure),
        path=PORTAL_PATH,
    )


def csrf_ok(request: Request, sent: object) -> bool:
    have = request.cookies.get(CSRF_COOKIE, "")
    return len(have) == 43 and same_secret(sent, have)


# ---------------------------------------------------------------- the follow grant
def _sign(request: Request, text: str) -> str:
    key: bytes = request.app.state.secret_key
    return hmac.new(key, b"portal-follow:" + text.encode(), hashlib.sha256).hexdigest()[:40]


def grant_follow(request: Request, response: Response, number: str) -> None:
    """Let this browser follow `number` for a while (a signed cookie, one number)."""
    minutes = int(portal_cfg(request.app.state.settings).get("follow_grant_minutes") or 30)
    expires = int(time.time()) + minutes * 60
    value = f"{number}.{expires}"
    response.set_cookie(
        FOLLOW_COOKIE,
        f"{value}.{_sign(request, value)}",
        max_age=minutes * 60,
        httponly=True,
        samesite="lax",
        secure=bool(request.app.state.settings.cookie_secure),
        path=PORTAL_PATH,
    )


def may_follow(request: Request, number: str) -> bool:
    raw = request.cookies.get(FOLLOW_COOKIE, "")
    value, _, sig = raw.rpartition(".")
    num, _, exp = value.rpartition(".")
    if not (num and exp.isdigit() and sig):
        return False
    if not same_secret(sig, _sign(request, value)):
        return False
    return num == number and int(exp) > time.time()


# ---------------------------------------------------------------- one-time SMS codes
@dataclass(frozen=True)
class CodePolicy:
    ttl: int
    max_tries: int
    per_number: int
    per_address: int
    verify_per_address: int

    @classmethod
    def of(cls, settings: Any) -> CodePolicy:
        c = portal_cfg(settings).get("follow_code") or {}
        return cls(
            ttl=int(c.get("ttl_minutes", 5)) * 60,
            max_tries=int(c.get("max_tries", 5)),
            per_number=int(c.get("per_number_per_10min", 3)),
            per_address=int(c.get("per_address_per_10min", 10)),
            verify_per_address=int(c.get("verify_per_address_per_10min", 30)),
        )


def _code_key(request: Request, number: str) -> str:
    ns = request.app.state.settings.redis_namespace
    return f"{ns}:portal:code:{hashlib.sha256(number.encode()).hexdigest()[:32]}"


def _code_digest(request: Request, number: str, phone: str, code: str) -> str:
    return _sign(request, f"code:{number}:{phone}:{code}")


def limit_code_requests(request: Request, number: str) -> None:
    """Count a code request (429 ApiError when over a limit)."""
    settings = request.app.state.settings
    p = CodePolicy.of(settings)
    hit_all(
        request.app.state.redis,
        settings.redis_namespace,
        [
            Limit(
                "portal-code-number",
                hashlib.sha256(number.encode()).hexdigest()[:32],
                p.per_number,
                "该工单的验证码发送过于频繁，请 {retry_after} 秒后再试",
            ),
            Limit(
                "portal-code-address",
                client_ip(request),
                p.per_address,
                "获取验证码过于频繁，请 {retry_after} 秒后再试",
            ),
        ],
        window=600,
    )


def limit_code_checks(request: Request) -> None:
    settings = request.app.state.settings
    hit_all(
        request.app.state.redis,
        settings.redis_namespace,
        [
            Limit(
                "portal-verify-address",
                client_ip(request),
                CodePolicy.of(settings).verify_per_address,
                "验证次数过多，请 {retry_after} 秒后再试",
            )
        ],
        window=600,
    )


def new_code(request: Request, number: str, phone: str) -> str:
    """Make and store (digest only) a fresh code for (number, phone); the previous one is void."""
    code = f"{secrets.randbelow(10**6):06d}"
    p = CodePolicy.of(request.app.state.settings)
    conn: redis.Redis = request.app.state.redis
    key = _code_key(request, number)
    pipe = conn.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"h": _code_digest(request, number, phone, code), "tries": 0})
    pipe.expire(key, p.ttl)
    pipe.execute()
    return code


def check_code(request: Request, number: str, phone: str, code: str) -> str | None:
    """None when the code is right (it is used up), else the Chinese reason."""
    p = CodePolicy.of(request.app.state.settings)
    conn: redis.Redis = request.app.state.redis
    key = _code_key(request, number)
    stored = conn.hget(key, "h")
    if stored is None:
        return "验证码已失效，请重新获取"
    want = stored.decode() if isinstance(stored, bytes) else str(stored)
    given = _code_digest(request, number, phone, code.strip())
    if same_secret(given, want):
        conn.delete(key)
        return None
    tries = int(conn.hincrby(key, "tries", 1))
    if tries >= p.max_tries:
        conn.delete(key)
        return "验证码错误次数过多，已失效，请重新获取"
    return f"验证码不正确（还可尝试 {p.max_tries - tries} 次）"
