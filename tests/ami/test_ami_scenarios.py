"""The bridge against the replaying AMI peer: live state in Redis, call records in the DB."""

from __future__ import annotations

import asyncio

import pytest
from replay_server import event_index, make_bridge, make_server, sync_point
from sqlmodel import Session, select

from callcenter.live import load_snapshot
from callcenter.models import CallRecord
from ticketing.models import CallbackTask, Ticket


async def run(settings, engine, aredis, name, **server_kw):
    server = await make_server(name, **server_kw)
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    return server, bridge


async def finish(server, bridge):
    await asyncio.wait_for(server.finished.wait(), 20)
    await sync_point(bridge)
    await bridge.settle()


def records(engine):
    with Session(engine) as s:
        return s.exec(select(CallRecord)).all()


async def test_answered_call_live_state_and_record(settings, engine, aredis, sredis):
    tr_server = await make_server("scenario-answered")
    pause = event_index(tr_server.transcript, 1, "BridgeEnter", 2)
    await tr_server.close()
    server, bridge = await run(settings, engine, aredis, "scenario-answered", pause_at={1: pause})
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
        snap = load_snapshot(sredis, settings)
        (call,) = snap["calls"]
        assert call["call_id"] == "1795569321.0"
        assert call["caller"] == "13800138000" and call["caller_name"] == "张三"
        assert call["status"] == "talking" and call["queue"] == "dxe-enterprise"
        assert call["agent_name"] == "张敏" and call["ivr_path"] == "1"
        assert call["category"] == "enterprise" and call["wait_seconds"] == 2
        assert call["recording"].endswith("dxe-20261125-091531-13800138000-1795569321.1.wav")
        agents = {a["interface"]: a for a in snap["agents"]}
        assert agents["Local/8001@agents"]["state"] == "on-call"
        assert agents["Local/8002@agents"]["state"] == "ready"
        assert {q["name"] for q in snap["queues"]} >= {"dxe-enterprise", "dxe-general"}
        assert snap["servers"]["pbx1"]["reconciled"]["total"] >= 1  # members learnt by resync

        server.resume_event.set()
        await finish(server, bridge)
        snap = load_snapshot(sredis, settings)
        assert snap["calls"] == []
        assert {a["interface"]: a["state"] for a in snap["agents"]}["Local/8001@agents"] == "ready"
        (rec,) = records(engine)
        assert rec.disposition == "answered"
        assert rec.caller_phone == "+8613800138000"
        assert (rec.wait_seconds, rec.talk_seconds) == (2, 20)
        assert rec.agent == "Local/8001@agents" and rec.agent_name == "张敏"
        assert rec.queue == "dxe-enterprise" and rec.ivr_path == "1"
        assert rec.category == "enterprise"
        assert rec.recording_path.endswith("1795569321.1.wav")
        assert rec.answered_at is not None and rec.ended_at >= rec.started_at
        with Session(engine) as s:
            t = s.get(Ticket, rec.ticket_id)
            assert t.channel == "hotline" and t.number == rec.ticket_number
            assert t.channel_data["call_id"] == "1795569321.0"
            assert t.category == "enterprise"
            assert s.exec(select(CallbackTask)).all() == []
        assert bridge.dispatcher.malformed == 0
    finally:
        await bridge.stop()
        await server.close()


async def test_abandoned_call_gets_one_callback_task(settings, engine, aredis, sredis):
    server, bridge = await run(settings, engine, aredis, "scenario-abandoned")
    try:
        await finish(server, bridge)
        (rec,) = records(engine)
        assert rec.disposition == "abandoned" and rec.wait_seconds == 17
        assert rec.queue == "dxe-complaint" and rec.category == "complaint"
        assert rec.answered_at is None and rec.agent is None
        with Session(engine) as s:
            (task,) = s.exec(select(CallbackTask)).all()
            assert task.reason == "abandoned" and task.call_id == "1795569356.7"
            assert task.phone == "+8613912345678" and task.ticket_id == rec.ticket_id
        snap = load_snapshot(sredis, settings)
        q = {q["name"]: q for q in snap["queues"]}["dxe-complaint"]
        assert q["waiting"] == 0 and q["abandoned"] >= 1
        # the same record handed over again (journal replay after a crash) changes nothing
        from callcenter.ami.calls import persist_call

        assert persist_call(engine, settings, _record_dict(rec), "pbx1") == "duplicate"
        with Session(engine) as s:
            assert len(s.exec(select(CallbackTask)).all()) == 1
            assert len(s.exec(select(Ticket)).all()) == 1
    finally:
        await bridge.stop()
        await server.close()


def _record_dict(rec: CallRecord) -> dict:
    return {
        "call_id": rec.call_id,
        "caller": "13912345678",
        "started": 0.0,
        "disposition": rec.disposition,
        "queued_abandon": True,
    }


async def test_voicemail_call(settings, engine, aredis):
    server, bridge = await run(settings, engine, aredis, "scenario-voicemail")
    try:
        await finish(server, bridge)
        (rec,) = records(engine)
        assert rec.disposition == "voicemail"
        assert rec.extra["voicemail_box"] == "12345@dianxiaoer"
        assert rec.ivr_path == "afterhours"
        with Session(engine) as s:
            t = s.get(Ticket, rec.ticket_id)
            assert t.channel == "voicemail"
            (task,) = s.exec(select(CallbackTask)).all()
            assert task.reason == "voicemail" and task.phone == "+8613600136000"
    finally:
        await bridge.stop()
        await server.close()


async def test_blind_transfer_keeps_one_record_and_one_ticket(settings, engine, aredis):
    server, bridge = await run(settings, engine, aredis, "scenario-transfer")
    try:
        await finish(server, bridge)
        (rec,) = records(engine)
        assert rec.call_id == "1795569420.18"
        assert rec.disposition == "transferred"
        assert rec.ivr_choices == ["1", "3"] and rec.ivr_path == "1>3"
        assert rec.extra["agents"] == ["Local/8002@agents", "Local/8003@agents"]
        assert rec.agent_name == "王芳" and rec.talk_seconds == 23
        assert len(rec.extra["recordings"]) == 2
        assert rec.category == "complaint"
        with Session(engine) as s:
            assert len(s.exec(select(Ticket)).all()) == 1
    finally:
        await bridge.stop()
        await server.close()


async def test_fastagi_menu_ivr_path_from_varset(settings, engine, aredis):
    server, bridge = await run(settings, engine, aredis, "scenario-fastagi")
    try:
        await finish(server, bridge)
        (rec,) = records(engine)
        assert rec.ivr_path == "2" and rec.category == "government"
        assert rec.queue == "dxe-government" and rec.agent_name == "李强"
        assert rec.disposition == "answered"
    finally:
        await bridge.stop()
        await server.close()


async def test_sip_hold_is_tracked(settings, engine, aredis, sredis):
    probe = await make_server("scenario-sip-hold")
    pause = event_index(probe.transcript, 1, "Hold")
    await probe.close()
    server, bridge = await run(settings, engine, aredis, "scenario-sip-hold", pause_at={1: pause})
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
        (call,) = load_snapshot(sredis, settings)["calls"]
        assert call["hold"] is True and call["status"] == "hold"
        assert call["caller"] == "13700137000" and call["caller_name"] == "王五"
        server.resume_event.set()
        await finish(server, bridge)
        (rec,) = records(engine)
        assert rec.disposition == "answered" and rec.talk_seconds == 30
        assert rec.caller_phone == "+8613700137000"
    finally:
        await bridge.stop()
        await server.close()


@pytest.mark.parametrize("ticket_var", [True, False])
async def test_call_links_the_ticket_the_agent_filed(settings, engine, aredis, sredis, ticket_var):
    """TICKET_NUMBER on the channel, or the API hook, links the agent's ticket: no new one."""
    from callcenter.live import link_ticket
    from config.database import session_scope
    from ticketing.intake import submit
    from ticketing.schemas import TicketIn

    with session_scope(engine) as s:
        t = submit(
            s,
            TicketIn(channel="web", content="坐席通话中登记：企业开办咨询", send_notice=False),
            settings=settings,
            actor="agent-8001",
        )
        number, tid = t.number, t.id
    probe = await make_server("scenario-answered")
    pause = event_index(probe.transcript, 1, "AgentConnect")
    await probe.close()
    server, bridge = await run(settings, engine, aredis, "scenario-answered", pause_at={1: pause})
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        if ticket_var:
            uid = "1795569321.1"
            bridge.state.varset(uid, "TICKET_NUMBER", number)
        else:
            link_ticket(sredis, settings, "1795569321.0", number)
        server.resume_event.set()
        await finish(server, bridge)
        (rec,) = records(engine)
        assert rec.ticket_id == tid and rec.ticket_number == number
        with Session(engine) as s:
            assert len(s.exec(select(Ticket)).all()) == 1
    finally:
        await bridge.stop()
        await server.close()


async def test_deltas_are_published_on_pubsub(settings, engine, aredis):
    """A web process subscribed to the live channel sees the call appear and go."""
    from callcenter.live import subscribe

    sub = aioredis_client(settings)
    got: list[dict] = []
    ready = asyncio.Event()

    async def listen():
        agen = subscribe(sub, settings)
        ready.set()
        async for delta in agen:
            got.append(delta)

    task = asyncio.ensure_future(listen())
    await ready.wait()
    await asyncio.sleep(0.1)  # subscription registered before the bridge publishes
    probe = await make_server("scenario-answered")
    pause = event_index(probe.transcript, 1, "BridgeEnter", 2)
    await probe.close()
    server, bridge = await run(settings, engine, aredis, "scenario-answered", pause_at={1: pause})
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
        server.resume_event.set()
        await finish(server, bridge)
        await asyncio.sleep(0.1)
        seen = [d["calls"].get("1795569321.0", "absent") for d in got]
        assert any(isinstance(c, dict) and c["status"] == "talking" for c in seen)
        assert None in seen  # the end of the call is a deletion
        assert got[0]["resync"] is True and got[0]["server"] == "pbx1"
        assert [d["seq"] for d in got] == list(range(1, len(got) + 1))
    finally:
        task.cancel()
        await bridge.stop()
        await server.close()
        await sub.aclose()


def aioredis_client(settings):
    import redis.asyncio as aioredis

    return aioredis.from_url(settings.redis_url)


def test_link_ticket_rejects_bad_input(settings, sredis):
    from callcenter.live import link_ticket

    with pytest.raises(ValueError, match="required"):
        link_ticket(sredis, settings, "", "DXE-1")
    with pytest.raises(ValueError):
        link_ticket(sredis, settings, "x" * 65, "DXE-1")


def test_hangup_during_greeting_is_recorded_without_ticket(settings, engine):
    from callcenter.ami.calls import persist_call

    rec = {
        "call_id": "1795569999.1",
        "caller": "13800000000",
        "caller_name": "",
        "started": 1795569999.0,
        "ended": 1795570001.0,
        "disposition": "abandoned",
        "ivr_choices": [],
    }
    assert persist_call(engine, settings, rec, "pbx1") == "stored"
    with Session(engine) as s:
        (row,) = s.exec(select(CallRecord)).all()
        assert row.ticket_id is None and "未建单" in row.ticket_error
        assert s.exec(select(Ticket)).all() == [] and s.exec(select(CallbackTask)).all() == []
    bad = {**rec, "call_id": "1795569999.2", "ivr_choices": ["1"], "caller": "<unknown>"}
    assert persist_call(engine, settings, bad, "pbx1") == "stored"  # anonymous caller
    with Session(engine) as s:
        row = s.exec(select(CallRecord).where(CallRecord.call_id == "1795569999.2")).one()
        assert row.ticket_id is not None and row.caller_phone == "<unknown>"
