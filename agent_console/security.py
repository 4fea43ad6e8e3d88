"""Passwords (Argon2) and bearer tokens (HMAC-SHA256 signed, stateless, revocable).

A token carries the user id, the user's token_version at issue time and an expiry. Bumping
User.token_version (logout, password reset, role change, deactivation) revokes every token issued
before, without any server-side session store — any web process can verify any token.

The same token is the web session cookie (HttpOnly, SameSite=Lax, Secure when cookie_secure).
CSRF: a request authenticated by the cookie (no Authorization header) that is not GET/HEAD/OPTIONS
must carry the header `X-Requested-With` (any value). Browsers cannot add a custom header to a
cross-site form post or simple request without a CORS preflight, and this app enables no CORS, so a
forged cross-site request never has it. Bearer-token clients are not exposed to CSRF and need nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

import anyio
import structlog
from anyio.lowlevel import RunVar
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config.settings import Settings
from ticketing import hash_password as hash_password  # the one hasher (ticketing.users)

COOKIE_NAME = "dxe_session"
CSRF_HEADER = "X-Requested-With"
TOKEN_PREFIX = "v1"

_hasher = PasswordHasher()
log = structlog.get_logger("agent_console.security")


def warn_insecure_cookie(settings: Settings) -> bool:
    """At start: a public URL on https with a session cookie not marked Secure means the cookie
    would also travel over plain http (a proxy's port 80, a downgrade). Warn; returns whether."""
    if settings.public_base_url.lower().startswith("https://") and not settings.cookie_secure:
        log.warning(
            "session_cookie_not_secure",
            public_base_url=settings.public_base_url,
            hint="set CALLCENTER_COOKIE_SECURE=true when the service is reached over https",
        )
        return True
    return False


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Password checks at once per process: Argon2 takes one core for ~170 ms, so more than one per core
# only makes every check (and every other request) slower.
HASH_SLOTS = max(1, os.cpu_count() or 1)
_hash_limiter: RunVar[anyio.CapacityLimiter] = RunVar("dxe_hash_limiter")


async def check_password(password_hash: str, password: str) -> bool:
    """verify_password in a worker thread, at most HASH_SLOTS at once; the others wait on the
    event loop (not in a thread of the pool other requests need)."""
    try:
        limiter = _hash_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(HASH_SLOTS)
        _hash_limiter.set(limiter)
    return await anyio.to_thread.run_sync(verify_password, password_hash, password, limiter=limiter)


# A valid hash to verify against when the user does not exist, so unknown and known usernames
# take the same time (no username enumeration by timing).
DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_version: int
    expires_at: int  # unix seconds
    # the user's role at issue time (a role change bumps token_version): lets a route refuse a
    # role before reading the user (deps.require); None in tokens issued before it was added
    role: str | None = None


def issue_token(
    key: bytes, user_id: int, token_version: int, ttl_seconds: int, role: str | None = None
) -> tuple[str, int]:
    exp = int(time.time()) + ttl_seconds
    claims: dict[str, object] = {"u": user_id, "v": token_version, "e": exp}
    if role is not None:
        claims["r"] = role
    payload = _b64(json.dumps(claims).encode())
    signing_input = f"{TOKEN_PREFIX}.{payload}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}", exp


def read_token(key: bytes, token: str, *, now: float | None = None) -> TokenClaims | None:
    """The claims of a well-signed, unexpired token; None for anything else (never raises)."""
    try:
        prefix, payload, sig = token.split(".")
        if prefix != TOKEN_PREFIX:
            return None
        expected = hmac.new(key, f"{prefix}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(sig)):
            return None
        data = json.loads(_unb64(payload))
        role = data.get("r")
        claims = TokenClaims(
            int(data["u"]), int(data["v"]), int(data["e"]), role if isinstance(role, str) else None
        )
    except (ValueError, KeyError, TypeError):
        return None
    if claims.expires_at <= (time.time() if now is None else now):
        return None
    return claims
