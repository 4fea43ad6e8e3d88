"""Fixtures for the API tests: a real app over the real DB (SQLite / PostgreSQL) and Redis."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

# tests/ is on sys.path (pytest's prepend import mode) and tests/agent_console/ has no __init__.py,
# so without the project root first `import agent_console` would find this directory as a
# namespace package instead of the real one (the editable install's finder comes after PathFinder).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pytest  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from config.settings import Settings  # noqa: E402


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator:
    """A TestClient (real ASGI over httpx, lifespan run) on a seeded DB: departments, one user per
    role. Clients send their own credentials per request."""
    from console_helpers import Api, make_client, seed

    ids = seed(engine, settings)
    with make_client(settings) as client:
        yield Api(client, settings, engine, ids)
