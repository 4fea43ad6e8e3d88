"""A web process for a benchmark: `callcenter web` started as a subprocess, ready once /healthz
answers 200, stopped (SIGTERM, then SIGKILL) on exit. Shared by bench/concurrency.py and
bench/web.py, so both measure the server exactly as `callcenter web` serves it.

The port: the caller's (--port), else $BENCH_PORT, else a free one the OS picks (on a shared
machine give each engineer's runs a port of their own range).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_port(port: int | None = None) -> int:
    """The port to serve on: `port`, else $BENCH_PORT, else a free one."""
    if port:
        return port
    env = os.environ.get("BENCH_PORT")
    return int(env) if env else free_port()


@contextmanager
def web_server(
    env: Mapping[str, str], port: int | None = None, *, ready_s: float = 180.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(base URL, process) of `callcenter web` on 127.0.0.1 with `env` over os.environ."""
    port = bench_port(port)
    cli = Path(sys.executable).with_name("callcenter")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "callcenter.cli"]
    proc = subprocess.Popen(
        [*cmd, "web", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=sys.stderr,  # the server's log lines: the bench's stdout is its JSON line alone
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"callcenter web exited with {proc.returncode}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"callcenter web not healthy within {ready_s:.0f} s")
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scratch_database(db_url: str | None, tmp: Path, prefix: str) -> tuple[str, Callable[[], None]]:
    """A database for one run: a new PostgreSQL database on `db_url`'s server (named
    `<prefix>_<random>`), or a SQLite file in `tmp` when no URL is given; with the call that
    drops it (a no-op for SQLite: `tmp` goes with the run)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    if not db_url:
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(db_url).set(database=name).render_as_string(hide_password=False), drop
