"""Helpers of the e2e tests (a plain module: conftest modules cannot be imported by name when
the whole suite is collected)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest
import redis.asyncio as aioredis
import yaml

from callcenter.ami.replay import ReplayServer, Transcript, default_library
from callcenter.bridge import RESYNC_ACTIONS, PbxBridge
from callcenter.demo import CAPTURE_PHONE
from callcenter.run import die_with_parent
from config.database import make_engine
from config.settings import DEFAULTS_DIR, AsteriskServer, Settings

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def shot(page, name: str) -> None:
    """A screenshot of the page as the user sees it (1366x768), for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


AMI = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "ami"


def start_service(args: list[str], port: int, env: dict[str, str], log: IO[Any], cwd: Path):
    """`callcenter <args>` serving on `port`, as a child that dies with this test process.

    Refuses a port that already answers: a server left behind by a killed test run would
    otherwise answer the readiness probe, and the tests would talk to it instead (its database
    has none of this run's users). The child gets PR_SET_PDEATHSIG, so a test run killed
    without its teardown (SIGKILL, a CI timeout) leaves no server behind to do that."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.fail(
                f"port {port} is already in use (a leftover `callcenter run` or `demo`?): "
                "stop it, or set CALLCENTER_E2E_PORT"
            )
    parent = os.getpid()
    return subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        preexec_fn=lambda: die_with_parent(parent),
    )


class BridgeThread:
    """A replaying PBX (scenario-answered, held at each of `pause_at`'s event counts) and the real
    bridge, on their own event loop in a thread of the test, against the app's Redis (and, given a
    journal, its database: finished calls are stored)."""

    def __init__(
        self,
        server,
        data_dir: Path,
        *,
        speed: float = 1.5,
        pause_at: int | tuple[int, ...] = 1,
        journal: Path | None = None,
    ) -> None:
        self.settings = Settings(
            data_dir=data_dir, redis_url=server.redis_url, redis_namespace=server.namespace
        )
        self.speed = speed
        self.pause_at = pause_at
        self.journal = journal
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop_event: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.stop_event = asyncio.Event()
        self.replay = await ReplayServer(
            Transcript.load(AMI, "scenario-answered"),
            library=default_library(AMI),
            speed=self.speed,
            gate=frozenset(a.lower() for a in RESYNC_ACTIONS),
            pause_at={1: self.pause_at},
        ).start()
        r = aioredis.from_url(self.settings.redis_url)
        cfg = AsteriskServer(name="pbx1", host="127.0.0.1", port=self.replay.port, secret="x")
        engine = make_engine(self.settings.resolved_database_url) if self.journal else None
        self.bridge = PbxBridge(
            self.settings, cfg, redis=r, engine=engine, flush_interval=0.01,
            journal_path=self.journal,
        )  # fmt: skip
        await self.bridge.start()
        self.ready.set()
        await self.stop_event.wait()
        await self.bridge.stop()
        await self.replay.close()
        await r.aclose()
        if engine is not None:
            engine.dispose()

    def start(self) -> BridgeThread:
        self.thread.start()
        assert self.ready.wait(20), "bridge did not start"
        return self

    def resume(self) -> None:
        """Let the held replay go on to its next hold (or the end)."""
        self.loop.call_soon_threadsafe(self.replay.resume_event.set)

    def wait_paused(self, timeout: float = 30) -> None:
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(self.replay.paused.wait(), timeout), self.loop
        )
        fut.result(timeout + 1)

    def sent(self, action: str) -> list[dict]:
        return [h for h in self.replay.received if h.get("action") == action]

    def close(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(20)


def phones_as_captured() -> dict[str, dict]:
    """console.yaml and wallboard.yaml (the bundled defaults) with the phones named as in the AMI
    captures (callcenter.demo.CAPTURE_PHONE: Local-channel agents, not the shipped PJSIP phones),
    for a server whose agents take the replayed calls."""
    console = yaml.safe_load((DEFAULTS_DIR / "console.yaml").read_text(encoding="utf-8"))
    console["interface_template"] = CAPTURE_PHONE
    wallboard = yaml.safe_load((DEFAULTS_DIR / "wallboard.yaml").read_text(encoding="utf-8"))
    wallboard["spy"]["phone_template"] = CAPTURE_PHONE
    return {"console.yaml": console, "wallboard.yaml": wallboard}
