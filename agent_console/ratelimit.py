"""Fixed-window rate limiting in Redis, shared by every web process.

One counter per (bucket, client, minute): INCR + EXPIRE in one round trip. Over the limit → 429
with Retry-After (seconds to the next window). The client is the peer address as uvicorn reports
it: X-Forwarded-For is believed only from settings.trusted_proxies (Settings.proxy_options, used by
`callcenter web`/`run`), none by default, so a client cannot choose the address it is counted
under. If Redis is down the request is refused (503) rather than let through unmetered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from fastapi import Request

from agent_console.errors import ApiError


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class Limit:
    """One counter: `limit` requests of `client` per window in `bucket`; `message` when over
    ({limit} and {retry_after} are filled in)."""

    bucket: str
    client: str
    limit: int
    message: str = "请求过于频繁，请 {retry_after} 秒后再试"


def hit_all(conn: redis.Redis, namespace: str, limits: list[Limit], window: int = 60) -> None:
    """Count one request against every limit (one round trip); 429 for the first one exceeded."""
    now = time.time()
    window_start = int(now // window) * window
    try:
        pipe = conn.pipeline(transaction=False)
        for lim in limits:
            key = f"{namespace}:ratelimit:{lim.bucket}:{lim.client}:{window_start}"
            pipe.incr(key)
            pipe.expire(key, window + 5)
        counts = pipe.execute()[::2]
    except redis.RedisError as e:
        raise ApiError(503, "服务暂不可用，请稍后再试", code="unavailable") from e
    for lim, count in zip(limits, counts, strict=True):
        if int(count) > lim.limit:
            retry_after = max(1, int(window_start + window - now + 0.999))
            raise ApiError(
                429,
                lim.message.format(limit=lim.limit, retry_after=retry_after),
                code="rate_limited",
                details={
                    "limit": lim.limit,
                    "window_seconds": window,
                    "retry_after": retry_after,
                    "scope": lim.bucket,
                },
                headers={"Retry-After": str(retry_after)},
            )


def hit(
    conn: redis.Redis, namespace: str, bucket: str, client: str, limit: int, window: int = 60
) -> None:
    """Count one request; raise 429 when `client` went over `limit` in this window."""
    hit_all(conn, namespace, [Limit(bucket, client, limit)], window)


def public_limit(request: Request) -> None:
    """Dependency for the public endpoints: settings.public_rate_limit_per_minute per client IP."""
    settings = request.app.state.settings
    hit(
        request.app.state.redis,
        settings.redis_namespace,
        "public",
        client_ip(request),
        settings.public_rate_limit_per_minute,
    )


def public_read_limit(request: Request) -> None:
    """Dependency for public reads of the knowledge base: its own, larger bucket
    (settings.public_read_rate_limit_per_minute), so the suggestions fetched while a citizen types
    never leave the submission itself refused."""
    settings = request.app.state.settings
    hit(
        request.app.state.redis,
        settings.redis_namespace,
        "public_read",
        client_ip(request),
        settings.public_read_rate_limit_per_minute,
    )


def login_limit(request: Request, username: str) -> None:
    """Slow down password guessing, before any password is checked: per (address, username)
    (settings.login_rate_limit_per_minute), per address across usernames (one client spraying
    many accounts, or pinning the cores on Argon2) and per account across addresses (a
    distributed guess at one account)."""
    settings = request.app.state.settings
    address, account = client_ip(request), username.strip().lower()[:64]
    hit_all(
        request.app.state.redis,
        settings.redis_namespace,
        [
            Limit(
                "login",
                f"{address}:{account}",
                settings.login_rate_limit_per_minute,
                "该账号在此地址的登录尝试过于频繁（每分钟最多 {limit} 次），请 {retry_after} 秒后再试",
            ),
            Limit(
                "login-address",
                address,
                settings.login_address_rate_limit_per_minute,
                "此地址的登录尝试过于频繁（每分钟最多 {limit} 次），请 {retry_after} 秒后再试",
            ),
            Limit(
                "login-account",
                account,
                settings.login_account_rate_limit_per_minute,
                "该账号的登录尝试过于频繁（每分钟最多 {limit} 次），请 {retry_after} 秒后再试",
            ),
        ],
    )
