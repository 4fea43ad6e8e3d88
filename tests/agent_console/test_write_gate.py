"""agent_console.middleware.WriteGate: how many writing requests are served at once, which
requests count as writing, and that a request leaves the gate when its response starts."""

from __future__ import annotations

import asyncio
from typing import Any

from agent_console.middleware import WriteGate

SLOTS = 2


class Inner:
    """An ASGI app that counts the requests inside it; each waits for `release` (a streaming one
    after its response has started)."""

    def __init__(self) -> None:
        self.inside = 0
        self.max_inside = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.inside += 1
        self.max_inside = max(self.max_inside, self.inside)
        try:
            if scope["path"] == "/stream":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await self.release.wait()
                await send({"type": "http.response.body", "body": b"x"})
                return
            await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.inside -= 1


def _gate(inner: Inner) -> WriteGate:
    return WriteGate(
        inner,
        slots=lambda: SLOTS,
        audited_read=lambda path: path.endswith("/audio"),
        exempt=frozenset({"/login"}),
    )


async def _call(app: WriteGate, method: str, path: str) -> None:
    scope = {"type": "http", "method": method, "path": path, "headers": []}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    await app(scope, receive, send)


async def _inside_at_once(method: str, path: str, n: int = 6) -> int:
    """How many of n concurrent requests got past the gate before any was let finish."""
    inner = Inner()
    app = _gate(inner)
    tasks = [asyncio.create_task(_call(app, method, path)) for _ in range(n)]
    for _ in range(10):
        await asyncio.sleep(0)
    seen = inner.inside
    inner.release.set()
    await asyncio.gather(*tasks)
    assert inner.inside == 0
    return seen


def test_writes_are_admitted_a_few_at_a_time_and_all_served():
    assert asyncio.run(_inside_at_once("POST", "/api/v1/suborders/1/accept")) == SLOTS
    assert asyncio.run(_inside_at_once("DELETE", "/api/v1/x")) == SLOTS


def test_a_playback_is_gated_like_a_write_other_reads_and_logins_are_not():
    assert asyncio.run(_inside_at_once("GET", "/api/v1/recordings/1/audio")) == SLOTS
    assert asyncio.run(_inside_at_once("GET", "/api/v1/tickets")) == 6
    assert asyncio.run(_inside_at_once("POST", "/login")) == 6


def test_a_request_leaves_the_gate_when_its_response_starts():
    """Streams (a recording played to a slow client) do not keep their place."""

    async def run() -> int:
        inner = Inner()
        app = _gate(inner)
        streams = [asyncio.create_task(_call(app, "POST", "/stream")) for _ in range(SLOTS)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert inner.inside == SLOTS  # both streaming, their responses started
        later = asyncio.create_task(_call(app, "POST", "/other"))
        for _ in range(10):
            await asyncio.sleep(0)
        seen = inner.inside
        inner.release.set()
        await asyncio.gather(*streams, later)
        return seen

    assert asyncio.run(run()) == SLOTS + 1
