"""Web → PBX commands over Redis (callcenter.commands): the bridge runs them with its AmiActions
against the replaying peer and answers; no bridge answers → a clear error, nothing left queued."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from replay_server import make_bridge, make_server, sync_point

from callcenter.commands import BridgeUnavailable, CommandFailed, auto_ready_key, send_command


async def test_bridge_runs_queue_commands_and_reports_ami_errors(settings, aredis, sredis):
    server = await make_server("actions-queue-members")
    bridge = make_bridge(settings, server, redis=aredis)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        args = {"queue": "dxe-general", "interface": "Local/8004@agents", "member_name": "赵磊"}
        reply = await asyncio.to_thread(
            send_command, sredis, settings, "pbx1", "queue_add", args, actor="agent"
        )
        assert reply["ok"] and reply["message"] == "Added interface to queue"
        sent = [h for h in server.received if h.get("action") == "QueueAdd"]
        assert sent and sent[-1]["interface"] == "Local/8004@agents"
        reply = await asyncio.to_thread(
            send_command, sredis, settings, "pbx1", "queue_pause",
            {"interface": "Local/8004@agents", "queue": "dxe-general", "reason": "break"},
            actor="agent",
        )  # fmt: skip
        assert reply["message"] == "Interface paused successfully"
        with pytest.raises(CommandFailed, match="No such queue"):
            await asyncio.to_thread(
                send_command, sredis, settings, "pbx1", "queue_add",
                {"queue": "no-such-queue", "interface": "Local/8004@agents"}, actor="agent",
            )  # fmt: skip
    finally:
        await bridge.stop()
        await server.close()


def test_no_bridge_is_a_clear_error_and_the_command_is_withdrawn(settings, sredis):
    started = time.monotonic()
    with pytest.raises(BridgeUnavailable, match="无应答"):
        send_command(
            sredis, settings, "pbx-none", "queue_unpause", {"interface": "Local/1@x"},
            actor="agent", timeout=1.0,
        )  # fmt: skip
    assert time.monotonic() - started < 3
    assert sredis.llen(f"{settings.redis_namespace}:pbx:pbx-none:commands") == 0


def test_only_known_commands_leave_the_web(settings, sredis):
    with pytest.raises(ValueError):
        send_command(sredis, settings, "pbx1", "originate", {}, actor="agent")


async def test_a_stale_command_is_dropped_not_run_late(settings, aredis, sredis):
    key = f"{settings.redis_namespace}:pbx:pbx1:commands"
    stale = {"id": "old", "command": "queue_add", "actor": "agent", "deadline": time.time() - 5,
             "args": {"queue": "dxe-general", "interface": "Local/8004@agents"}}  # fmt: skip
    sredis.rpush(key, json.dumps(stale))
    server = await make_server("actions-queue-members")
    bridge = make_bridge(settings, server, redis=aredis)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        for _ in range(50):
            if sredis.llen(key) == 0:
                break
            await asyncio.sleep(0.05)
        assert sredis.llen(key) == 0
        assert not [h for h in server.received if h.get("action") == "QueueAdd"]
        assert sredis.get(f"{settings.redis_namespace}:pbx:reply:old") is None
    finally:
        await bridge.stop()
        await server.close()


async def test_the_bridge_readies_a_wrapped_up_agent_unless_paused_for_another_reason(
    settings, aredis, sredis
):
    """Automatic ready after wrap-up (commands.ready_due): a queue_pause with ready_after is
    held in Redis and the bridge sends QueuePause false when due — except to an agent the PBX
    has since reported paused for another reason (an event the bridge ingests)."""
    server = await make_server("actions-queue-members")
    bridge = make_bridge(settings, server, redis=aredis)
    await bridge.start()
    key = auto_ready_key(settings.redis_namespace, "pbx1")
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        for iface in ("Local/8004@agents", "Local/8001@agents"):
            await asyncio.to_thread(
                send_command, sredis, settings, "pbx1", "queue_pause",
                {"interface": iface, "reason": "wrapup", "ready_after": 1}, actor="agent",
            )  # fmt: skip
        assert set(sredis.hkeys(key)) == {b"Local/8004@agents", b"Local/8001@agents"}
        for _ in range(100):  # the peer's own QueueMemberPause (wrapup) ingested first
            if bridge._paused_reason("Local/8001@agents") == "wrapup":
                break
            await asyncio.sleep(0.02)
        # the PBX reports 8001 paused for 会议 (a supervisor, or the phone): not wrap-up any more
        # (one event per queue of the agent, as Asterisk sends for a pause without a queue)
        for queue in bridge.state.agents["Local/8001@agents"].queues:
            frame = (f"Event: QueueMemberPause\r\nQueue: {queue}\r\nMemberName: 李娜\r\n"
                     "Interface: Local/8001@agents\r\nPaused: 1\r\nPausedReason: 会议\r\n")  # fmt: skip
            bridge.on_raw_event("QueueMemberPause", frame)

        def unpaused() -> list[str]:
            return [
                h["interface"]
                for h in server.received
                if h.get("action") == "QueuePause" and h.get("paused") == "false"
            ]

        # both taken by the bridge's check (1 s after the pause); the key empties before the
        # QueuePause reaches the peer, so wait for the action itself, not only for the key
        for _ in range(300):
            if not sredis.hlen(key) and unpaused():
                break
            await asyncio.sleep(0.05)
        assert not sredis.hlen(key)
        await asyncio.sleep(0.3)  # room for a wrong QueuePause for 8001 to arrive too
        await sync_point(bridge)
        assert unpaused() == ["Local/8004@agents"]  # 8001 stays paused for 会议
    finally:
        await bridge.stop()
        await server.close()


async def test_an_auto_ready_due_while_the_pbx_is_away_is_sent_when_it_is_back(
    settings, aredis, sredis
):
    """The PBX link down when a wrap-up ends (Asterisk restarting, the network): the schedule
    stays in Redis and the agent is made ready once the bridge is connected again, not left
    paused with the queue waiting."""
    server = await make_server("actions-queue-members")
    bridge = make_bridge(settings, server, redis=aredis)
    await bridge.start()
    key = auto_ready_key(settings.redis_namespace, "pbx1")
    again = None
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await asyncio.to_thread(
            send_command, sredis, settings, "pbx1", "queue_pause",
            {"interface": "Local/8004@agents", "reason": "wrapup", "ready_after": 1},
            actor="agent",
        )  # fmt: skip
        port = server.port
        await server.close()  # the PBX goes away before the wrap-up ends
        await asyncio.sleep(2.5)  # the schedule falls due, and two checks pass, link down
        assert sredis.hkeys(key) == [b"Local/8004@agents"]
        assert not [h for h in server.received if h.get("paused") == "false"]
        again = await make_server("actions-queue-members", port=port)
        for _ in range(200):
            sent = [h for h in again.received if h.get("action") == "QueuePause"]
            if sent and not sredis.hlen(key):
                break
            await asyncio.sleep(0.05)
        assert [(h["interface"], h["paused"]) for h in sent] == [("Local/8004@agents", "false")]
        assert not sredis.hlen(key)
    finally:
        await bridge.stop()
        if again is not None:
            await again.close()
