"""The console's blind transfer as a bridge command (callcenter.commands `transfer`): the bridge
sends AMI BlindTransfer with the fixed context dxe-transfer and answers with Asterisk's result;
a channel or extension outside what [dxe-transfer] has is refused before anything reaches AMI."""

from __future__ import annotations

import asyncio

import pytest
from replay_server import make_bridge, make_server, sync_point

from callcenter.commands import CommandFailed, send_command

LEG = "Local/8002@agents-00000006;1"  # the agent's leg of the captured transfer


async def test_transfer_is_a_blind_transfer_into_dxe_transfer(settings, aredis, sredis):
    server = await make_server("scenario-transfer", speed=None)
    bridge = make_bridge(settings, server, redis=aredis)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 30)
        await sync_point(bridge)
        reply = await asyncio.to_thread(
            send_command, sredis, settings, "pbx1", "transfer",
            {"channel": LEG, "exten": "dxe-complaint"}, actor="agent",
        )  # fmt: skip
        assert reply["ok"] and reply["message"] == "Transfer succeeded"
        (sent,) = [h for h in server.received if h.get("action") == "BlindTransfer"]
        assert sent["channel"] == LEG
        assert (sent["context"], sent["exten"]) == ("dxe-transfer", "dxe-complaint")
        for args in (
            {"channel": LEG, "exten": "12345"},  # not a [dxe-transfer] extension
            {"channel": LEG, "exten": "8003\r\nAction: Originate"},  # header injection
            {"channel": "Local/8002@agents-1;1\r\nAction: Hangup", "exten": "8003"},
            {"channel": LEG},  # incomplete
        ):
            with pytest.raises(CommandFailed):
                await asyncio.to_thread(
                    send_command, sredis, settings, "pbx1", "transfer", args, actor="agent"
                )
        assert len([h for h in server.received if h.get("action") == "BlindTransfer"]) == 1
    finally:
        await bridge.stop()
        await server.close()
