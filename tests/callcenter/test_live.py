"""callcenter.live's stream of deltas, on a real Redis: how a reader stops it."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from callcenter.ami.publish import keys
from callcenter.live import subscribe


async def test_a_reader_that_cancels_and_closes_its_client_leaves_no_failed_task(settings):
    """The wallboard and the agent's event stream stop as readers do: cancel the task waiting
    for the next delta, close the client. The generator's cleanup (UNSUBSCRIBE) then meets a
    closed client; before, that task ended with redis' ConnectionError, logged a minute later as
    "Task exception was never retrieved" with a traceback."""
    client = aioredis.from_url(settings.redis_url)
    channel = keys(settings.redis_namespace, "_")["channel"]
    deltas = subscribe(client, settings).__aiter__()
    nxt = asyncio.ensure_future(deltas.__anext__())
    publisher = aioredis.from_url(settings.redis_url)
    try:
        for _ in range(100):  # subscribed: the delta published now arrives
            await publisher.publish(channel, json.dumps({"calls": {}}))
            done, _ = await asyncio.wait({nxt}, timeout=0.05)
            if done:
                break
        assert nxt.result() == {"calls": {}}
        nxt = asyncio.ensure_future(deltas.__anext__())
        await asyncio.sleep(0.05)  # the generator waits inside pubsub.listen()
        nxt.cancel()
        await client.aclose()  # at once, as the readers do
        await asyncio.wait({nxt}, timeout=5)
        assert nxt.cancelled(), nxt.exception()
    finally:
        await publisher.aclose()
        await client.aclose()
