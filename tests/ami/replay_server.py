"""Test side of the replaying AMI peer (the server itself lives in callcenter.ami.replay so the
demo and the benchmark can use it too) plus helpers to run a bridge against it.

Run standalone to serve a transcript to any AMI client:
    .venv/bin/python tests/ami/replay_server.py scenario-answered --port 5038 --speed 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from pathlib import Path

from callcenter.ami.replay import (
    ConnScript,
    Frame,
    ReplayServer,
    Transcript,
    default_library,
    login_failure_frames,
    parse_frame,
)
from callcenter.bridge import RESYNC_ACTIONS, PbxBridge
from config.settings import AsteriskServer, Settings

__all__ = [
    "AMI_DIR",
    "RESYNC_GATE",
    "SECRET",
    "ConnScript",
    "Frame",
    "ReplayServer",
    "Transcript",
    "event_index",
    "library",
    "make_bridge",
    "make_server",
    "parse_frame",
    "sync_point",
]

_shared = Path(__file__).resolve().parents[3] / "shared"
if not _shared.exists():
    _shared = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
AMI_DIR = _shared / "fixtures" / "ami"
RESYNC_GATE = frozenset(a.lower() for a in RESYNC_ACTIONS)
SECRET = "replay-secret"  # what the replaying PBX accepts (the captures mask the real one)

_LIB: list[Transcript] | None = None


def library() -> list[Transcript]:
    global _LIB
    if _LIB is None:
        _LIB = default_library(AMI_DIR)
    return _LIB


def event_index(tr: Transcript, conn: int, event: str, nth: int = 1, **match: str) -> int:
    """Number of stream events up to and including the nth `event` (with matching headers)."""
    seen = 0
    for i, f in enumerate(tr.conns[conn].stream):
        h = parse_frame(f.data)
        if h.get("event") == event and all(h.get(k.lower()) == v for k, v in match.items()):
            seen += 1
            if seen == nth:
                return i + 1
    raise LookupError(f"{event} #{nth} not in {tr.name} conn{conn}")


async def make_server(name: str, **kw) -> ReplayServer:
    kw.setdefault("library", library())
    kw.setdefault("gate", RESYNC_GATE)
    kw.setdefault("secret", SECRET)
    kw.setdefault("login_failure", login_failure_frames(AMI_DIR))
    return await ReplayServer(Transcript.load(AMI_DIR, name), **kw).start()


def make_bridge(settings: Settings, server: ReplayServer, *, redis=None, engine=None, **kw):
    name = kw.pop("name", "pbx1")
    configured = next((a for a in settings.asterisk if a.name == name), None)
    cfg = AsteriskServer(
        name=name,
        spool_dir=configured.spool_dir if configured else None,
        host="127.0.0.1",
        port=server.port,
        username="callcenter",
        secret=kw.pop("secret", SECRET),
    )
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.1)
    kw.setdefault("flush_interval", 0.005)
    kw.setdefault("retry_interval", 0.05)
    kw.setdefault("login_timeout", 5.0)
    kw.setdefault("action_timeout", 5.0)
    kw.setdefault("rng", random.Random(7))
    return PbxBridge(settings, cfg, redis=redis, engine=engine, **kw)


async def sync_point(bridge: PbxBridge, timeout: float = 10.0) -> None:
    """Every byte the server wrote before now has been ingested: a Ping's answer comes after them."""
    await asyncio.wait_for(bridge.conn.connected_event.wait(), timeout)
    await bridge.conn.send({"Action": "Ping"}, timeout=timeout)


async def _main() -> None:
    p = argparse.ArgumentParser(
        description="Replay a captured Asterisk AMI transcript (simulation)"
    )
    p.add_argument("name")
    p.add_argument("--port", type=int, default=5038)
    p.add_argument("--speed", type=float, default=None)
    p.add_argument("--secret", default=None)
    a = p.parse_args()
    srv = ReplayServer(
        Transcript.load(AMI_DIR, a.name),
        library=library(),
        speed=a.speed,
        secret=a.secret,
        port=a.port,
    )
    await srv.start()
    print(f"SIMULATION: replaying {a.name} on 127.0.0.1:{srv.port}")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main())
