"""The web's intake writer (agent_console.intake_batcher): concurrent creations share a transaction,
yet each request gets its own answer, in the API's order (401/403, then 422, then the ticket).

To make a batch deterministically, the test holds the database's write lock from a second
connection while the first creation is in flight, queues the rest behind it, then lets go: the
writer finishes the first and takes all the others in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from console_helpers import seed
from fastapi.exceptions import RequestValidationError
from sqlmodel import func, select

from agent_console.deps import Bearer
from agent_console.errors import ApiError
from agent_console.intake_batcher import IntakeBatcher
from agent_console.roles import ROLE_MATRIX
from config.database import session_scope
from ticketing.errors import InvalidInput
from ticketing.models import Ticket, User

ROLES = frozenset(ROLE_MATRIX["tickets.create"])


def _body(i: int, **extra) -> bytes:
    data = {
        "channel": "hotline",
        "content": "企业开办营业执照怎么网上办理？",
        "submitter_phone": f"1380013{i:04d}",
        "channel_data": {"call_id": f"writer-{i}"},
        "send_notice": False,
        **extra,
    }
    return json.dumps(data, ensure_ascii=False).encode()


@contextmanager
def _write_lock(engine):
    """Another transaction holding the write lock: on SQLite any write transaction (the engine
    begins them IMMEDIATE), on PostgreSQL an exclusive lock on the ticket table."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE ticket IN EXCLUSIVE MODE")
        else:
            conn.exec_driver_sql("SELECT 1")  # the engine's BEGIN IMMEDIATE runs here
        yield


async def _batched(engine, batcher: IntakeBatcher, first, rest) -> list:
    """Submit `first`, then (with the writer stuck on the lock) all of `rest`; outcomes in order.
    The writer is closed before returning: it reports a batch's size after answering it, so only
    once it has stopped are all sizes in."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with _write_lock(engine):
            held.set()
            release.wait(30)

    holder = loop.run_in_executor(None, hold)
    if not await loop.run_in_executor(None, held.wait, 10):
        await holder  # raises what stopped it
        raise AssertionError("the lock holder never got the lock")
    tasks = [asyncio.ensure_future(batcher.submit(*first))]
    await asyncio.sleep(0.3)  # the writer has taken `first` and waits on the lock
    tasks += [asyncio.ensure_future(batcher.submit(*args)) for args in rest]
    await asyncio.sleep(0.1)
    release.set()
    await holder
    out = await asyncio.gather(*tasks, return_exceptions=True)
    await loop.run_in_executor(None, batcher.close)
    return out


@pytest.fixture
def world(engine, settings):
    ids = seed(engine, settings)
    sizes: list[int] = []
    batcher = IntakeBatcher(
        engine,
        settings,
        lambda t: (t.id, t.number),
        observe=lambda size, _seconds: sizes.append(size),
    )
    try:
        yield engine, batcher, ids, sizes
    finally:
        batcher.close()


def _bearer(engine, username: str) -> Bearer:
    with session_scope(engine, read_only=True) as s:
        u = s.exec(select(User).where(User.username == username)).one()
        return Bearer(u.id, u.token_version, ROLES)


def test_waiting_creations_share_one_transaction(world):
    engine, batcher, _ids, sizes = world
    agent = _bearer(engine, "agent")
    out = asyncio.run(
        _batched(engine, batcher, (_body(0), agent), [(_body(i), agent) for i in range(1, 11)])
    )
    assert sizes == [1, 10], sizes
    assert all(isinstance(o, tuple) for o in out), out
    numbers = [int(n.rsplit("-", 1)[1]) for _, n in out]
    assert sorted(numbers) == list(range(1, 12))
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 11


def test_each_request_gets_its_own_answer_in_the_apis_order(world):
    engine, batcher, ids, sizes = world
    agent, leader = _bearer(engine, "agent"), _bearer(engine, "leader")
    revoked = Bearer(ids["dispatcher"], 999, ROLES)  # a token version the user no longer has
    ghost = Bearer(10_000_000, 0, ROLES)
    rest = [
        (_body(1), agent),  # 0 created
        (b'{"channel": "nope"', agent),  # 1 not JSON → 422
        (_body(2, channel="nope"), agent),  # 2 invalid field → 422
        (b'{"channel": "nope"}', revoked),  # 3 revoked: 401 before the body's 422
        (_body(3), ghost),  # 4 no such user → 401
        (_body(4), leader),  # 5 role may not create → 403
        (_body(5, submitter_phone="call me"), agent),  # 6 refused by intake → 422
        (_body(1), agent),  # 7 the same call as 0 → 0's ticket
    ]
    out = asyncio.run(_batched(engine, batcher, (_body(0), agent), rest))
    assert sizes == [1, len(rest)], sizes
    first, *out = out
    assert isinstance(first, tuple)
    assert isinstance(out[0], tuple)
    assert isinstance(out[1], RequestValidationError)
    assert out[1].errors()[0]["type"] == "json_invalid"
    assert isinstance(out[2], RequestValidationError)
    assert out[2].errors()[0]["loc"][:2] == ("body", "channel")
    assert isinstance(out[3], ApiError) and out[3].status_code == 401
    assert isinstance(out[4], ApiError) and out[4].status_code == 401
    assert isinstance(out[5], ApiError) and out[5].status_code == 403
    assert out[5].details == {"role": "leader"}
    assert isinstance(out[6], InvalidInput) and out[6].details["field"] == "phone"
    assert out[7] == out[0]
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 2


def test_a_poisoned_batch_is_retried_one_by_one(world):
    """A row the database itself refuses fails the shared transaction; every creation is then
    written alone, so only the poisoned one fails. The poison is PostgreSQL's: jsonb refuses
    \\u0000 (SQLite stores it)."""
    engine, batcher, _ids, sizes = world
    agent = _bearer(engine, "agent")
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores \\u0000 in JSON; the poison needs PostgreSQL's jsonb")
    poison = _body(3, channel_data={"call_id": "writer-3", "note": "a\u0000b"})
    rest = [(_body(1), agent), (_body(2), agent), (poison, agent), (_body(4), agent)]
    out = asyncio.run(_batched(engine, batcher, (_body(0), agent), rest))
    assert sizes == [1, 4], sizes
    assert isinstance(out[3], sa.exc.DataError), out[3]
    assert all(isinstance(o, tuple) for i, o in enumerate(out) if i != 3), out
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 4


def test_close_finishes_what_is_queued(engine, settings):
    seed(engine, settings)
    batcher = IntakeBatcher(engine, settings, lambda t: t.number)
    agent = _bearer(engine, "agent")

    async def go():
        tasks = [asyncio.ensure_future(batcher.submit(_body(i), agent)) for i in range(5)]
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, batcher.close)
        return await asyncio.gather(*tasks)

    numbers = asyncio.run(go())
    assert len(set(numbers)) == 5
    with pytest.raises(RuntimeError):
        asyncio.run(batcher.submit(_body(9), agent))


def test_database_away_answers_503_and_the_writer_lives_on(settings):
    """Nothing listens where the database should be: a creation is answered 503 with
    Retry-After (nothing was written), and the writer thread survives to answer the next."""
    from console_helpers import make_client

    from agent_console.security import issue_token

    dead = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"}
    )
    with make_client(dead) as client:
        token, _ = issue_token(client.app.state.secret_key, 1, 0, 600)
        for _ in range(2):
            r = client.post(
                "/api/v1/tickets",
                content=_body(1),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "5"
            assert r.json()["error"]["code"] == "unavailable"
        assert client.app.state.intake._thread.is_alive()


def test_a_restarted_database_costs_no_creation(world):
    """PostgreSQL: the writer's pool does not ping its connections; when the server has dropped
    them (a restart, a failover), the next batch finds one dead, the pool is emptied and the
    batch goes again on a fresh connection: the caller sees its ticket, not a 503."""
    engine, batcher, _ids, _sizes = world
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to restart")
    agent = _bearer(engine, "agent")

    async def create(i: int):
        return await batcher.submit(_body(i), agent)

    first = asyncio.run(create(1))
    with engine.connect() as c:
        killed = c.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert killed >= 1  # the writer's pooled connection among them
    second = asyncio.run(create(2))
    third = asyncio.run(create(3))
    numbers = [first[1], second[1], third[1]]
    assert len(set(numbers)) == 3
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 3
