"""One live wallboard per web process, fanned out to every SSE client of that process.

Why a hub: 50 supervisors' browsers must not mean 50 Redis subscriptions and 50 recomputations.
The hub holds one subscription to the bridges' delta channel (callcenter.live.subscribe: every
PBX publishes there), keeps a mirror of the merged live snapshot, and after each burst of deltas
rebuilds the board once (callcenter.figures.board) and hands the same serialised message to every
client's queue. The day's stored figures are re-read from the database in a thread: shortly after
a call ends (its record lands a moment later) and every `DAY_REFRESH_S` otherwise.

A client that (re)connects gets the current full board first, so a browser that lost its
connection converges without a reload; a client too slow to keep up loses intermediate boards,
never the latest (each message is the whole board). Several web processes each run their own hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis

from callcenter.figures import abandoned_calls, board, board_config, day_figures, today_bounds
from callcenter.live import load_snapshot, subscribe
from config.database import session_scope
from config.redis import redis_url
from ticketing import utcnow

log = logging.getLogger(__name__)

DAY_REFRESH_S = 15.0
ENDED_REFRESH_S = (0.5, 2.0)  # after a call ends: its record is stored within this time
CLIENT_BACKLOG = 4
IDLE_STOP_S = 60.0


class Hub:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.clients: set[asyncio.Queue[str]] = set()
        self.live: dict[str, dict[str, dict[str, Any]]] = {}  # server → kind → key → item
        self.meta: dict[str, Any] = {}
        self.day: dict[str, Any] = {}
        self.abandoned: list[dict[str, Any]] = []
        self.message = ""  # the last full board, serialised (sent first on connect)
        self.version = 0
        self._task: asyncio.Task[None] | None = None
        self._day_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._idle_since: float | None = None

    # ----- clients -------------------------------------------------------------------------
    async def join(self) -> asyncio.Queue[str]:
        q: asyncio.Queue[str] = asyncio.Queue(CLIENT_BACKLOG)
        self.clients.add(q)
        self._idle_since = None
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.ensure_future(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)
        if self.message:
            q.put_nowait(self.message)
        return q

    def leave(self, q: asyncio.Queue[str]) -> None:
        self.clients.discard(q)
        if not self.clients:
            self._idle_since = time.monotonic()

    def _broadcast(self, msg: str) -> None:
        for q in list(self.clients):
            if q.full():  # slow client: drop its oldest board, keep the newest
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(msg)

    # ----- state -----------------------------------------------------------------------------
    def _load_snapshot(self) -> None:
        snap = load_snapshot(self.app.state.redis, self.app.state.settings)
        live: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, key in (("calls", "call_id"), ("queues", "name"), ("agents", "interface")):
            for item in snap[kind]:
                live.setdefault(item["server"], {}).setdefault(kind, {})[item[key]] = item
        self.live, self.meta = live, snap["servers"]

    def _apply(self, delta: dict[str, Any]) -> bool:
        """Merge one bridge delta; True when a call ended (the day's figures will change)."""
        server = str(delta.get("server") or "")
        if delta.get("resync"):
            return True
        ended = False
        mirror = self.live.setdefault(server, {})
        if server not in self.meta:
            self.meta[server] = {}
        for kind in ("calls", "queues", "agents"):
            part = mirror.setdefault(kind, {})
            for key, item in (delta.get(kind) or {}).items():
                if item is None:
                    part.pop(key, None)
                    ended = ended or kind == "calls"
                else:
                    part[key] = {**item, "server": server}
        return ended

    def _snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"servers": self.meta, "calls": [], "queues": [], "agents": []}
        for mirror in self.live.values():
            for kind in ("calls", "queues", "agents"):
                out[kind].extend((mirror.get(kind) or {}).values())
        return out

    def _load_day(self) -> None:
        settings = self.app.state.settings
        cfg = board_config(settings)
        now = utcnow()
        with session_scope(self.app.state.engine, read_only=True) as s:
            self.day = day_figures(s, cfg, now)
            start, end = today_bounds(cfg, now)
            self.abandoned = abandoned_calls(s, start, end)

    def build(self) -> str:
        cfg = board_config(self.app.state.settings)
        b = board(self._snapshot(), self.day, cfg, time.time())
        b["abandoned"] = self.abandoned
        self.version += 1
        b["version"] = self.version
        self.message = json.dumps(b, ensure_ascii=False, separators=(",", ":"))
        return self.message

    async def _refresh_day(self, delays: tuple[float, ...]) -> None:
        for d in delays:
            await asyncio.sleep(d)
            try:
                await asyncio.to_thread(self._load_day)
            except Exception as e:  # DB away: keep the last figures
                log.warning("wallboard day figures not read (%s)", type(e).__name__)
                continue
            self._broadcast(self.build())

    def _day_soon(self) -> None:
        if self._day_task is None or self._day_task.done():
            self._day_task = asyncio.ensure_future(self._refresh_day(ENDED_REFRESH_S))

    # ----- the loop ----------------------------------------------------------------------------
    async def _run(self) -> None:
        settings = self.app.state.settings
        client = aioredis.from_url(redis_url(settings))
        try:
            while True:
                try:
                    await self._follow(client)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # Redis away: retry, then reload everything
                    log.warning("wallboard stream interrupted (%s)", type(e).__name__)
                    await asyncio.sleep(1.0)
                if self._idle_since and time.monotonic() - self._idle_since > IDLE_STOP_S:
                    return
        finally:
            await client.aclose()

    async def _follow(self, client: Any) -> None:
        deltas = subscribe(client, self.app.state.settings).__aiter__()
        nxt: asyncio.Future[Any] = asyncio.ensure_future(deltas.__anext__())
        try:
            await asyncio.sleep(0)  # subscribe before the snapshot: nothing falls in between
            await asyncio.to_thread(self._load_snapshot)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._load_day)
            self._broadcast(self.build())
            self._ready.set()
            last_day = time.monotonic()
            while True:
                done, _ = await asyncio.wait({nxt}, timeout=1.0)
                if not done:
                    if self._idle_since and time.monotonic() - self._idle_since > IDLE_STOP_S:
                        return
                    if time.monotonic() - last_day > DAY_REFRESH_S:
                        last_day = time.monotonic()
                        if self._day_task is None or self._day_task.done():
                            self._day_task = asyncio.ensure_future(self._refresh_day((0.0,)))
                    else:
                        self._broadcast(self.build())  # times in state and waits tick on
                    continue
                batch = [nxt.result()]
                nxt = asyncio.ensure_future(deltas.__anext__())
                # everything already arrived is one board (coalesce bursts)
                while True:
                    await asyncio.sleep(0)
                    if not nxt.done():
                        break
                    batch.append(nxt.result())
                    nxt = asyncio.ensure_future(deltas.__anext__())
                ended = False
                for delta in batch:
                    if delta.get("resync"):
                        await asyncio.to_thread(self._load_snapshot)
                        ended = True
                    else:
                        ended = self._apply(delta) or ended
                self._broadcast(self.build())
                if ended:
                    self._day_soon()
        finally:
            nxt.cancel()
            with contextlib.suppress(BaseException):
                await deltas.aclose()  # type: ignore[attr-defined]


def hub_of(app: Any) -> Hub:
    hub = getattr(app.state, "wallboard_hub", None)
    if hub is None:
        hub = app.state.wallboard_hub = Hub(app)
    return hub
