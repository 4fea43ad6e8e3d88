"""Read side of the live call/queue/agent state for web processes (the bridge writes it).

The web app imports this module only: `load_snapshot` for a page load, `subscribe` for the
stream of deltas (each delta carries the changed calls/queues/agents, `None` = gone, and
`resync: true` when the subscriber should reload the snapshot), `link_ticket` for the agent
console to attach the ticket it filed to the call in progress.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from callcenter.ami.publish import keys
from config.settings import Settings


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _servers(r, settings: Settings) -> list[str]:
    k = keys(settings.redis_namespace, "_")
    return sorted(_s(x) for x in r.smembers(k["servers"]))


def load_snapshot(r, settings: Settings) -> dict[str, Any]:
    """Everything live, from a sync redis client: {"servers": {name: {...}}, "calls": [...], …}.

    Calls, queues and agents of all servers are merged into lists; each item names its server.
    """
    out: dict[str, Any] = {"servers": {}, "calls": [], "queues": [], "agents": []}
    for server in _servers(r, settings):
        k = keys(settings.redis_namespace, server)
        pipe = r.pipeline(transaction=False)
        pipe.hgetall(k["calls"])
        pipe.hgetall(k["queues"])
        pipe.hgetall(k["agents"])
        pipe.hgetall(k["meta"])
        calls, queues, agents, meta = pipe.execute()
        out["servers"][server] = {_s(a): _meta_value(_s(b)) for a, b in meta.items()}
        for name, raw in (("calls", calls), ("queues", queues), ("agents", agents)):
            for v in raw.values():
                item = json.loads(_s(v))
                item["server"] = server
                out[name].append(item)
    out["calls"].sort(key=lambda c: c.get("started") or 0)
    out["queues"].sort(key=lambda q: q["name"])
    out["agents"].sort(key=lambda a: a["interface"])
    return out


def _meta_value(v: str) -> Any:
    try:
        return json.loads(v)
    except ValueError:
        return v


async def subscribe(aredis, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Yield each published delta (redis.asyncio client). Reload the snapshot on `resync`."""
    channel = keys(settings.redis_namespace, "_")["channel"]
    pubsub = aredis.pubsub()
    await pubsub.subscribe(channel)
    try:
        async for msg in pubsub.listen():
            if msg.get("type") == "message":
                yield json.loads(_s(msg["data"]))
    finally:
        # A reader stops by cancelling the task that awaits the next delta and closing its client
        # at once, so this cleanup often runs on a closed client (or Redis is gone): nothing is
        # left to undo then, and no error may outlive that task ("exception never retrieved").
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe(channel)
        with contextlib.suppress(Exception):
            await pubsub.aclose()


def link_ticket(r, settings: Settings, call_id: str, ticket_number: str) -> None:
    """API hook: the agent filed `ticket_number` during call `call_id`; the bridge links them."""
    if not call_id or not ticket_number or len(call_id) > 64 or len(ticket_number) > 32:
        raise ValueError("call_id and ticket_number are required (≤64 / ≤32 chars)")
    r.hset(keys(settings.redis_namespace, "_")["links"], call_id, ticket_number)


def agent_leg(call: dict[str, Any], interface: str) -> str | None:
    """The agent's own channel in a live call (a `load_snapshot` call): the leg whose name is the
    queue member's interface plus Asterisk's suffix — `Local/8001@agents-00000006;1` (the Local
    half bridged with the caller) for `Local/8001@agents`, `PJSIP/8001-0000001f` for `PJSIP/8001`.
    What a blind transfer names as the transferer; None when the agent is not on the call."""
    for leg in call.get("legs") or []:
        base, sep, rest = str(leg).rpartition("-")
        if sep and base == interface and (not leg.startswith("Local/") or rest.endswith(";1")):
            return str(leg)
    return None
