"""What the PBX sends is not ours to refuse, and one bad record must not stop the others: over-long
values are cut to their columns, a record the database refuses for good goes to a dead-letter file
after a few tries while the records behind it are stored (real bridge, real DB, real journal)."""

from __future__ import annotations

import asyncio
import json
import time

from replay_server import make_bridge, make_server, sync_point
from sqlmodel import Session, select

from callcenter.ami.calls import persist_call
from callcenter.models import CallRecord
from ticketing.models import Ticket


def _rec(call_id: str, **over) -> dict:
    now = time.time()
    rec = {
        "call_id": call_id,
        "caller": "13800138000",
        "caller_name": "张三",
        "started": now - 60,
        "ended": now,
        "ivr_choices": ["1"],
        "queue": "dxe-enterprise",
        "disposition": "abandoned",
        "queued_abandon": True,
    }
    rec.update(over)
    return rec


def test_over_long_pbx_values_are_cut_not_refused(settings, engine):
    rec = _rec(
        "1795571111.1",
        caller_name="张" * 150,
        queue="q" * 100,
        hangup_cause="1234567890",
        ivr_path="1" * 300,
        ticket_number="DXE-" + "9" * 100,
    )
    assert persist_call(engine, settings, rec, "pbx1") == "stored"
    with Session(engine) as s:
        (row,) = s.exec(select(CallRecord)).all()
        assert (
            len(row.caller_name) == 100 and len(row.queue) == 64 and row.hangup_cause == "12345678"
        )
        t = s.get(Ticket, row.ticket_id)
        assert t.submitter_name == "张" * 100 and t.channel == "hotline"
        assert "工单号不存在" in row.ticket_error and len(row.ticket_error) <= 500


async def test_a_refused_record_is_set_aside_and_the_rest_are_stored(settings, engine, aredis):
    server = await make_server("scenario-abandoned")
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    poison = _rec("1795572222.1", started="not-a-time")  # fails the same way every time
    bridge.journal.put_many([("1795572222.1", poison), ("1795573333.1", _rec("1795573333.1"))])
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
    finally:
        await bridge.stop()
        await server.close()
    with Session(engine) as s:
        ids = sorted(r.call_id for r in s.exec(select(CallRecord)))
    assert ids == ["1795569356.7", "1795573333.1"]  # the captured call and the good record
    assert bridge.buried == 1 and bridge.journal.pending_count == 0
    (dead,) = [json.loads(x) for x in bridge.journal.dead_path.read_text().splitlines()]
    assert dead["id"] == "1795572222.1" and dead["data"]["started"] == "not-a-time"
    assert dead["error"].startswith("TypeError")
