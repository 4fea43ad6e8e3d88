"""Console actions over the real socket: recorded Asterisk answers, errors, timeouts."""

from __future__ import annotations

import asyncio

import pytest
from replay_server import make_bridge, make_server, sync_point

from callcenter.ami.actions import AmiActionError
from callcenter.ami.connection import AmiNotConnected, AmiTimeout


async def started(settings, name, **kw):
    server = await make_server(name, **kw)
    bridge = make_bridge(settings, server)
    await bridge.start()
    await asyncio.wait_for(server.finished.wait(), 20)
    await sync_point(bridge)
    return server, bridge


async def test_queue_member_actions_and_errors(settings):
    server, bridge = await started(settings, "actions-queue-members")
    a = bridge.actions
    try:
        r = await a.queue_add("dxe-general", "Local/8004@agents", member_name="赵磊")
        assert r.action == "QueueAdd" and r.message == "Added interface to queue"
        r = await a.queue_pause("Local/8004@agents", queue="dxe-general", reason="午休")
        assert r.message == "Interface paused successfully"
        r = await a.queue_unpause("Local/8004@agents", queue="dxe-general")
        assert r.message == "Interface unpaused successfully"
        r = await a.queue_remove("dxe-general", "Local/8004@agents")
        assert r.message == "Removed interface from queue"
        with pytest.raises(AmiActionError, match="Unable to remove interface: Not there"):
            await a.queue_remove("dxe-general", "Local/8004@agents")
        with pytest.raises(AmiActionError) as e:
            await a.queue_add("no-such-queue", "Local/8004@agents")
        assert e.value.message == "Unable to add interface to queue: No such queue"
        assert e.value.action == "QueueAdd"
        sent = [h for h in server.received if h.get("action") == "QueueAdd"]
        assert sent[0]["membername"] == "赵磊" and sent[0]["paused"] == "false"
        # the member events of the stream drove the agent state: 赵磊 added, paused, removed
        agents = bridge.state.agents
        assert "dxe-general" not in agents["Local/8004@agents"].queues
        assert agents["Local/8001@agents"].state(0) == "ready"
    finally:
        await bridge.stop()
        await server.close()


async def test_pause_reason_reaches_agent_state(settings):
    from replay_server import event_index

    probe = await make_server("actions-queue-members")
    n = event_index(probe.transcript, 1, "QueueMemberPause", 4)  # 8001 paused in all 3 queues
    await probe.close()
    server = await make_server("actions-queue-members", pause_at={1: n})
    bridge = make_bridge(settings, server)
    await bridge.start()
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        a = bridge.state.agents["Local/8001@agents"].live_dict(0)
        assert a["state"] == "paused" and a["pause_reason"] == "会议"
        assert a["name"] == "张敏"
        z = bridge.state.agents["Local/8004@agents"].live_dict(0)
        assert z["state"] == "ready" and z["queues"]["dxe-general"]["penalty"] == 2
    finally:
        await bridge.stop()
        await server.close()


async def test_status_session_hangup_and_originate(settings):
    server, bridge = await started(settings, "actions-status")
    a = bridge.actions
    try:
        r = await a.hangup("Local/12345@hotline-inbound-0000000b;2", cause=16)
        assert r.message == "Channel Hungup"
        r = await a.originate_callback(
            "Local/12345@hotline-inbound",
            context="caller-sim",
            exten="press",
            caller_id='"周八" <13300133000>',
            variables={"DXE_MODE": "open", "SIM_DIGITS": "0"},
        )
        assert r.message == "Originate successfully queued"
        sent = next(h for h in server.received if h.get("action") == "Originate")
        assert sent["async"] == "true" and sent["variable"] == "DXE_MODE=open"
        # an action this PBX never answered in the captures: Asterisk's own error shape
        with pytest.raises(AmiActionError, match="Invalid/unknown command: Redirect"):
            await a.redirect("Local/8001@agents-00000001;1", context="hotline-inbound", exten="3")
    finally:
        await bridge.stop()
        await server.close()


async def test_blind_transfer_action_recorded_answer(settings):
    server, bridge = await started(settings, "scenario-transfer")
    try:
        r = await bridge.actions.blind_transfer(
            "Local/8002@agents-00000006;1", context="hotline-inbound", exten="3"
        )
        assert r.message == "Transfer succeeded"
    finally:
        await bridge.stop()
        await server.close()


async def test_action_timeout_and_not_connected(settings):
    server, bridge = await started(settings, "scenario-voicemail")
    try:

        async def never(*_a, **_k):
            return None

        server._answer = never  # this PBX stops answering actions
        bridge.actions.timeout = 0.2
        with pytest.raises(AmiTimeout, match="QueuePause got no answer"):
            await bridge.actions.queue_pause("Local/8001@agents", reason="培训")
        await server.close()  # PBX gone
        await asyncio.sleep(0.05)
        with pytest.raises(AmiNotConnected):
            await bridge.actions.hangup("Local/8001@agents-00000001;1")
    finally:
        await bridge.stop()
        await server.close()
