"""Concurrent synchronous writes over real HTTP to a real uvicorn must not stall the process.

Before: the per-process SQLite writer lock was taken by the authentication dependency (its
session.get(User) began the request's write transaction) and released only when the route's
session committed, several thread-pool hops later. 40+ requests waiting on the lock occupied every
worker thread, the holder never got one back to run its route, and every request (/healthz too)
waited 30 s, then failed with 500/503. Bounded: every request has a timeout well below the stall.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from console_helpers import DEPT_A, PASSWORD, seed, serve

from agent_console import create_app
from config.database import session_scope
from ticketing import SubOrder, TicketIn, submit

N_WRITES = 60
TIMEOUT_S = 20.0  # the stall lasted 30 s (WRITER_WAIT_S / the pool's timeout)


def _suborders(engine, settings, n: int) -> list[int]:
    """n tickets dispatched to DEPT_A: one fresh sub-order each."""
    ids = []
    with session_scope(engine) as s:
        for i in range(n):
            t = submit(
                s,
                TicketIn(
                    channel="web",
                    content=f"并发测试诉求 {i}：企业开办咨询",
                    departments=[DEPT_A],
                    send_notice=False,
                ),
                settings=settings,
                actor="test",
            )
            s.flush()
            ids.extend(so.id for so in s.query(SubOrder).filter(SubOrder.ticket_id == t.id))
    return ids


async def _burst(base: str, tokens: dict[str, str], subs: list[int]) -> tuple[list, list]:
    """N_WRITES mixed writes at once, and /healthz probed every 100 ms meanwhile."""

    def h(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user]}"}

    limits = httpx.Limits(max_connections=N_WRITES + 10, max_keepalive_connections=N_WRITES + 10)
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S, limits=limits) as c:
        done = asyncio.Event()
        health: list = []

        async def probe() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                try:
                    r = await c.get("/healthz", timeout=5)
                    health.append((r.status_code, time.perf_counter() - t0))
                except httpx.HTTPError as e:
                    health.append((type(e).__name__, time.perf_counter() - t0))
                await asyncio.sleep(0.1)

        async def write(i: int):
            kind = i % 6
            try:
                if kind == 0:
                    return await c.post(f"/api/v1/suborders/{subs[i]}/accept", headers=h("handler"))
                if kind == 1:
                    return await c.post(
                        f"/api/v1/suborders/{subs[i]}/reply",
                        json={"text": "已办结"},
                        headers=h("handler"),
                    )
                if kind == 2:
                    return await c.post(
                        "/api/v1/public/tickets",
                        json={
                            "channel": "web",
                            "content": f"公众诉求 {i}",
                            "submitter_phone": "13800138000",
                        },
                    )
                if kind == 3:
                    return await c.post(
                        "/api/v1/users",
                        json={"username": f"u{i}", "password": PASSWORD, "role": "agent"},
                        headers=h("admin"),
                    )
                if kind == 4:
                    return await c.post(
                        f"/api/v1/suborders/{subs[i]}/extension",
                        json={"reason": "需要现场核查", "amount": 1, "unit": "working_days"},
                        headers=h("handler"),
                    )
                return await c.get("/api/v1/recordings/1/audio", headers=h("agent"))
            except httpx.HTTPError as e:
                return e

        task = asyncio.create_task(probe())
        results = await asyncio.gather(*(write(i) for i in range(N_WRITES)))
        done.set()
        await task
        return results, health


@pytest.fixture
def served(settings, engine, monkeypatch) -> Iterator[tuple[str, dict[str, str], list[int]]]:
    # the public form's limit is per address, and every request here comes from 127.0.0.1
    settings = settings.model_copy(update={"public_rate_limit_per_minute": 10_000})
    ids = seed(engine, settings)
    assert ids
    subs = _suborders(engine, settings, N_WRITES)
    with serve(create_app(settings)) as base:
        tokens = {}
        with httpx.Client(base_url=base, timeout=30) as c:
            for user in ("handler", "admin", "agent"):
                r = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
                assert r.status_code == 200, r.text
                tokens[user] = r.json()["access_token"]
        yield base, tokens, subs


def test_concurrent_writes_do_not_stall_the_process(served):
    base, tokens, subs = served
    results, health = asyncio.run(_burst(base, tokens, subs))
    failures = [
        r if isinstance(r, Exception) else (r.request.url.path, r.status_code, r.text[:200])
        for r in results
        if isinstance(r, Exception) or r.status_code >= 500
    ]
    assert not failures, failures
    assert all(r.status_code < 500 for r in results)
    # accept, the public form and user creation succeed (the others may answer a 4xx: a reply
    # before acceptance, the missing recording's 404)
    assert sum(200 <= r.status_code < 300 for r in results) >= N_WRITES // 2
    assert health, "no /healthz probe finished"
    bad = [h for h in health if h[0] != 200]
    assert not bad, bad


def test_every_route_with_a_session_runs_its_transaction_in_one_hop():
    """A route that takes the request's Session must be served by deps.TransactionRoute (its
    router's route_class): otherwise its transaction would span thread-pool hops again."""
    from agent_console.app import iter_routes
    from agent_console.deps import _session_params

    unwrapped = [
        path
        for path, route in iter_routes()
        if not getattr(route.endpoint, "_one_hop", False) and _session_params(route.endpoint)
    ]
    # reads its raw body on the event loop, then begins and commits in one thread itself
    assert unwrapped == ["/api/v1/handoff/callback"], unwrapped
    wrapped = [p for p, r in iter_routes() if getattr(r.endpoint, "_one_hop", False)]
    assert "/api/v1/suborders/{suborder_id}/accept" in wrapped
