"""Fixtures for the web workspace's page tests: the real app (TestClient over ASGI) on a seeded DB."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for p in (str(_ROOT), str(_ROOT / "tests" / "agent_console")):
    if p not in sys.path:
        sys.path.insert(0, p)

import pytest  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from config.settings import Settings  # noqa: E402


@pytest.fixture
def web(settings: Settings, engine: Engine) -> Iterator:
    from console_helpers import make_client, seed
    from web_helpers import Web

    ids = seed(engine, settings)
    with make_client(settings) as client:
        yield Web(client, settings, engine, ids)
