"""Live state → Redis: per-server snapshot hashes plus one pub/sub channel of deltas.

Why batched: ingest must not wait for Redis per event. The state marks what changed (dirty sets);
`flush()` writes each changed call/queue/agent once per batch in one pipeline and publishes one
delta message. If Redis is down the dirty sets simply keep growing (bounded by the number of live
entities, because they hold ids, not copies) and the next successful flush writes the *current*
state plus a `resync` hint so subscribers reload the snapshot: no update is lost, only coalesced.

Keys (ns = settings.redis_namespace, s = server name):
  {ns}:live:servers            set of server names
  {ns}:live:{s}:calls          hash call_id → JSON
  {ns}:live:{s}:queues         hash queue → JSON
  {ns}:live:{s}:agents         hash interface → JSON
  {ns}:live:{s}:meta           hash: connected, updated, counters (JSON)
  {ns}:live:{s}:facts          hash call_id → the call's facts, reloaded by a restarted bridge
  {ns}:live:events             pub/sub channel of deltas (JSON)
  {ns}:live:ticket-links       hash call_id → ticket number (API hook, see live.link_ticket)
"""

from __future__ import annotations

import json
import logging
from typing import Any

from callcenter.ami.state import LiveState

log = logging.getLogger(__name__)


def keys(namespace: str, server: str) -> dict[str, str]:
    base = f"{namespace}:live"
    return {
        "servers": f"{base}:servers",
        "calls": f"{base}:{server}:calls",
        "queues": f"{base}:{server}:queues",
        "agents": f"{base}:{server}:agents",
        "meta": f"{base}:{server}:meta",
        "channel": f"{base}:events",
        "links": f"{base}:ticket-links",
        "facts": f"{base}:{server}:facts",  # call_id → facts a restarted bridge reloads
    }


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class Publisher:
    """Writes dirty parts of a LiveState to Redis (redis.asyncio client)."""

    def __init__(self, redis, namespace: str, server: str) -> None:
        self.redis = redis
        self.server = server
        self.k = keys(namespace, server)
        self.seq = 0
        self.flushes = 0
        self.failures = 0
        self.published = 0
        self._need_full = True  # first flush (and after an outage) rewrites the whole snapshot
        self.meta: dict[str, Any] = {}

    async def flush(self, state: LiveState, now: float, *, full: bool = False) -> bool:
        """One pipeline for everything dirty. Returns False (state kept dirty) if Redis failed."""
        full = full or self._need_full
        # Take the dirty sets *before* awaiting Redis: events keep arriving during the round
        # trip and must land in fresh sets, not be cleared with the batch we are writing.
        calls, queues, agents, removed = (
            state.dirty_calls,
            state.dirty_queues,
            state.dirty_agents,
            state.removed_calls,
        )
        state.dirty_calls, state.dirty_queues, state.dirty_agents = set(), set(), set()
        state.removed_calls = set()
        if full:
            calls = calls | set(state.calls)
            queues = queues | set(state.queues)
            agents = agents | set(state.agents)
        if not (calls or queues or agents or removed or full or self.meta):
            return True
        taken = (calls, queues, agents, removed)
        delta: dict[str, Any] = {"server": self.server, "seq": self.seq + 1, "ts": now}
        dc: dict[str, Any] = {}
        dq: dict[str, Any] = {}
        da: dict[str, Any] = {}
        pipe = self.redis.pipeline(transaction=False)
        if full:
            pipe.delete(self.k["calls"], self.k["queues"], self.k["agents"])
            delta["resync"] = True
        pipe.sadd(self.k["servers"], self.server)
        for cid in calls:
            c = state.calls.get(cid)
            if c is not None:
                dc[cid] = c.live_dict(now)
        for cid in removed:
            if cid not in state.calls:
                dc[cid] = None
        for name in queues:
            q = state.queues.get(name)
            if q is not None:
                dq[name] = q.live_dict(state, now)
        for iface in agents:
            a = state.agents.get(iface)
            da[iface] = a.live_dict(now) if a is not None else None
        if dc:
            from callcenter.ami.facts import FACTS_TTL_S, facts_of

            facts = {cid: facts_of(state.calls[cid]) for cid, v in dc.items() if v is not None}
            ended = [cid for cid, v in dc.items() if v is None]
            if facts:
                pipe.hset(self.k["facts"], mapping=facts)
                pipe.expire(self.k["facts"], FACTS_TTL_S)
            if ended:
                pipe.hdel(self.k["facts"], *ended)
        for key, d in ((self.k["calls"], dc), (self.k["queues"], dq), (self.k["agents"], da)):
            live = {k: _dumps(v) for k, v in d.items() if v is not None}
            gone = [k for k, v in d.items() if v is None]
            if live:
                pipe.hset(key, mapping=live)
            if gone:
                pipe.hdel(key, *gone)
        meta = {"updated": now, **{k: _dumps(v) for k, v in self.meta.items()}}
        pipe.hset(self.k["meta"], mapping=meta)
        delta.update(calls=dc, queues=dq, agents=da)
        pipe.publish(self.k["channel"], _dumps(delta))
        try:
            await pipe.execute()
        except Exception as e:  # redis down / timeout: keep it dirty, retry next flush
            self.failures += 1
            self._need_full = True
            state.dirty_calls |= taken[0]
            state.dirty_queues |= taken[1]
            state.dirty_agents |= taken[2]
            state.removed_calls |= taken[3]
            log.warning("live-state publish failed (%s); will retry", type(e).__name__)
            return False
        self.seq += 1
        self.flushes += 1
        self.published += len(dc) + len(dq) + len(da)
        self._need_full = False
        return True

    async def take_ticket_link(self, call_id: str) -> str | None:
        """Ticket number the API attached to a call (live.link_ticket), consumed once."""
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hget(self.k["links"], call_id)
            pipe.hdel(self.k["links"], call_id)
            value, _ = await pipe.execute()
        except Exception:
            return None
        return value.decode() if isinstance(value, bytes) else value
