"""Fixed-window rate limiting in Redis, shared by every web process.

One counter per (bucket, client, minute): INCR + EXPIRE in one round trip. Over the limit → 429
with Retry-After (seconds to the next window). The client is the peer address as uvicorn reports
it; behind a reverse proxy run uvicorn with --proxy-headers/--forwarded-allow-ips so that is the
real client. If Redis is down the request is refused (503) rather than let through unmetered.
"""

from __future__ import annotations

import time

import redis
from fastapi import Request

from agent_console.errors import ApiError


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def hit(
    conn: redis.Redis, namespace: str, bucket: str, client: str, limit: int, window: int = 60
) -> None:
    """Count one request; raise 429 when `client` went over `limit` in this window."""
    now = time.time()
    window_start = int(now // window) * window
    key = f"{namespace}:ratelimit:{bucket}:{client}:{window_start}"
    try:
        pipe = conn.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window + 5)
        count, _ = pipe.execute()
    except redis.RedisError as e:
        raise ApiError(503, "服务暂不可用，请稍后再试", code="unavailable") from e
    if int(count) > limit:
        retry_after = max(1, int(window_start + window - now + 0.999))
        raise ApiError(
            429,
            "请求过于频繁，请稍后再试",
            code="rate_limited",
            details={"limit": limit, "window_seconds": window, "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


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


def login_limit(request: Request, username: str) -> None:
    """Slow down password guessing: 10 attempts per (client IP, username) per minute, so one
    office behind a NAT does not lock itself out."""
    settings = request.app.state.settings
    client = f"{client_ip(request)}:{username.strip().lower()[:64]}"
    hit(request.app.state.redis, settings.redis_namespace, "login", client, 10)
