"""Nothing is lost when Redis or the database is briefly down, nor when the bridge crashes."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from replay_server import make_bridge, make_server, sync_point
from sqlmodel import Session, select

from callcenter.ami.buffer import Journal
from callcenter.live import load_snapshot
from callcenter.models import CallRecord
from config.database import make_engine
from ticketing.models import CallbackTask

DEAD_PG = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"


async def test_redis_outage_is_caught_up(settings, engine, sredis):
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    server = await make_server("scenario-abandoned")
    bridge = make_bridge(settings, server, redis=dead, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await asyncio.sleep(0.1)
        assert bridge.publisher.failures >= 1
        assert load_snapshot(sredis, settings)["agents"] == []  # nothing got through yet
        live = aioredis.from_url(settings.redis_url)
        bridge.publisher.redis = live  # Redis is back
        bridge._dirty.set()
        await bridge.settle()
        snap = load_snapshot(sredis, settings)
        assert len(snap["agents"]) == 3 and snap["calls"] == []
        assert {q["name"] for q in snap["queues"]} >= {"dxe-complaint"}
        assert len([r for r in _records(engine)]) == 1  # the DB never waited for Redis
        await live.aclose()
    finally:
        await bridge.stop()
        await server.close()
        await dead.aclose()


def _records(engine):
    with Session(engine) as s:
        return s.exec(select(CallRecord)).all()


async def test_db_outage_then_crash_then_recovery(settings, engine, aredis, tmp_path):
    journal = tmp_path / "calls.jsonl"
    dead_engine = make_engine(DEAD_PG)
    server = await make_server("scenario-abandoned")
    bridge = make_bridge(settings, server, redis=aredis, engine=dead_engine, journal_path=journal)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        for _ in range(200):
            if bridge.store_failures:
                break
            await asyncio.sleep(0.02)
        assert bridge.store_failures >= 1 and bridge.journal.pending_count == 1
        assert "OperationalError" in bridge.last_store_error
    finally:
        await bridge.stop()  # the "crash": the process goes away with the record unstored
        await server.close()
        dead_engine.dispose()
    with open(journal, "a", encoding="utf-8") as fh:
        fh.write('{"op": "put", "id": "torn')  # a write cut short by the crash
    reopened = Journal(journal)
    assert reopened.pending_count == 1 and reopened.corrupt_lines == 1

    # a new bridge process with the DB back: the journaled call is stored, exactly once
    server2 = await make_server("actions-login-failed", conns=[2])
    bridge2 = make_bridge(settings, server2, redis=aredis, engine=engine, journal_path=journal)
    await bridge2.start()
    try:
        await bridge2.settle()
        (rec,) = _records(engine)
        assert rec.call_id == "1795569356.7" and rec.disposition == "abandoned"
        with Session(engine) as s:
            assert len(s.exec(select(CallbackTask)).all()) == 1
        assert bridge2.journal.pending_count == 0
    finally:
        await bridge2.stop()
        await server2.close()
    assert Journal(journal).pending() == []


def test_journal_compacts_and_keeps_pending(tmp_path):
    j = Journal(tmp_path / "j.jsonl", compact_bytes=10_000)
    for i in range(200):
        j.put(f"c{i}", {"call_id": f"c{i}", "n": "张三" * 5})
    j.done([f"c{i}" for i in range(150)])
    size = (tmp_path / "j.jsonl").stat().st_size
    assert size < 10_000  # compacted: only the 50 pending records remain on disk
    left = Journal(tmp_path / "j.jsonl").pending()
    assert [k for k, _ in left] == [f"c{i}" for i in range(150, 200)]
    assert left[0][1]["n"] == "张三" * 5
    j.done([k for k, _ in left])
    assert Journal(tmp_path / "j.jsonl").pending_count == 0
