"""Fixtures for the AMI bridge tests: async + sync Redis clients on the test namespace."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis


@pytest.fixture
async def aredis(settings):
    r = aioredis.from_url(settings.redis_url)
    yield r
    await r.aclose()


@pytest.fixture
def sredis(settings):
    r = redis.Redis.from_url(settings.redis_url)
    yield r
    r.close()
