"""A call's facts kept where a restarted bridge finds them (Redis), so it still ends right.

Why: the bridge learns a call's IVR choice, queue, agent and answer time from events as they
happen; a new bridge process (crash, deploy, supervisor restart) only sees the channels that still
exist (CoreShowChannels) and would file those calls as "hung up before the menu". The publisher
writes each live call's facts next to the live view ({ns}:live:{server}:facts, call_id → JSON);
the next bridge loads them at start and gives them back to each call when it rediscovers it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from callcenter.ami.state import Call

log = logging.getLogger(__name__)

FACT_FIELDS = (
    "started",
    "caller_num",
    "caller_name",
    "status",
    "ivr_choices",
    "ivr_names",
    "ivr_path",
    "ivr_category",
    "queue",
    "queues",
    "joined_at",
    "wait_seconds",
    "answered",
    "agent",
    "agent_name",
    "agents",
    "talk_seconds",
    "hold_seconds",
    "recordings",
    "channels",
    "abandoned",
    "queued_abandon",
    "voicemail",
    "voicemail_box",
    "transferred",
    "ticket_number",
    "ivr_fallback",
)
FACTS_TTL_S = 2 * 86400  # facts of a call nobody rediscovered (it ended while away) expire


def facts_key(namespace: str, server: str) -> str:
    return f"{namespace}:live:{server}:facts"


def facts_of(call: Call) -> str:
    return json.dumps(
        {k: getattr(call, k) for k in FACT_FIELDS if getattr(call, k, None) not in (None, "", [])},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def restore(call: Call, facts: dict[str, Any]) -> None:
    """Give a rediscovered call what the previous bridge knew; what the new one saw wins."""
    for k, v in facts.items():
        if k not in FACT_FIELDS:
            continue
        cur = getattr(call, k, None)
        if k == "started":
            call.started = min(call.started, float(v))
        elif k == "status":
            if call.status == "ivr":
                call.status = v
        elif cur in (None, "", [], 0, 0.0, False):
            setattr(call, k, v)
    call.restored = True


async def load(redis: Any, namespace: str, server: str) -> dict[str, dict[str, Any]]:
    """Every saved call's facts (empty when Redis is away: the calls then end as discovered)."""
    try:
        raw = await redis.hgetall(facts_key(namespace, server))
    except Exception as e:
        log.warning("call facts not loaded from Redis (%s); restarted calls lose them", e)
        return {}
    out: dict[str, dict[str, Any]] = {}
    for k, v in raw.items():
        try:
            out[k.decode() if isinstance(k, bytes) else k] = json.loads(v)
        except ValueError:
            continue
    return out
