"""The replaying AMI peer answers a QueuePause as Asterisk 22 does: its recorded reply, then per
queue the member was paused in a DeviceStateChange and a QueueMemberPause with Asterisk 22's fields
(app_queue's QueueMemberPause: Queue … Wrapuptime), so the bridge sees the pause without any test
writing the event for it."""

from __future__ import annotations

import asyncio
import time

from replay_server import SECRET, make_bridge, make_server, parse_frame, sync_point

FIELDS = [
    "event", "privilege", "queue", "membername", "interface", "stateinterface", "membership",
    "penalty", "callstaken", "lastcall", "lastpause", "logintime", "incall", "status", "paused",
    "pausedreason", "ringinuse", "wrapuptime",
]  # fmt: skip


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.buf, self.n = reader, writer, "", 0

    async def send(self, action: str, **headers: str) -> str:
        self.n += 1
        aid = f"t-{self.n}"
        lines = [f"Action: {action}", f"ActionID: {aid}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        return aid

    async def frames_until(self, done) -> list[str]:
        """Frames read until done(frame) is true for one (bounded by the caller's wait_for)."""
        out: list[str] = []
        while True:
            while "\r\n\r\n" not in self.buf:
                chunk = await self.reader.read(65536)
                assert chunk, "the peer closed"
                self.buf += chunk.decode()
            frame, self.buf = self.buf.split("\r\n\r\n", 1)
            out.append(frame + "\r\n\r\n")
            if done(frame):
                return out


def _keys(frame: str) -> list[str]:
    return [line.split(": ", 1)[0].lower() for line in frame.strip().split("\r\n")]


async def _client(port: int) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c = Client(reader, writer)
    await reader.readline()  # banner
    aid = await c.send("Login", Username="callcenter", Secret=SECRET, Events="on")
    await asyncio.wait_for(c.frames_until(lambda f: f"ActionID: {aid}" in f), 10)
    aid = await c.send("QueueStatus")  # what the bridge asks on (re)connect: the members
    await asyncio.wait_for(c.frames_until(lambda f: "QueueStatusComplete" in f), 10)
    return c


async def test_queue_pause_is_followed_by_queue_member_pause_per_queue():
    server = await make_server("scenario-answered", pause_at={1: 1})  # held: only our frames
    try:
        c = await _client(server.port)
        before = int(time.time())
        aid = await c.send(
            "QueuePause", Interface="Local/8001@agents", Paused="true", Reason="会议"
        )
        frames = await asyncio.wait_for(
            c.frames_until(lambda f: f.count("Event: QueueMemberPause") and "dxe-" in f), 10
        )
        reply = next(parse_frame(f) for f in frames if f"ActionID: {aid}" in f)
        assert reply["response"] == "Success"
        more = await _more_pauses(c, len(server.members) - 1)
        pauses = [parse_frame(f) for f in frames + more if "Event: QueueMemberPause" in f]
        queues = sorted(q for q, i in server.members if i == "Local/8001@agents")
        assert len(queues) >= 2 and sorted(p["queue"] for p in pauses) == queues
        for f in [f for f in frames + more if "Event: QueueMemberPause" in f]:
            assert _keys(f) == FIELDS
        p = pauses[0]
        assert p["membername"] == "张敏" and p["interface"] == "Local/8001@agents"
        assert (p["paused"], p["pausedreason"], p["membership"]) == ("1", "会议", "static")
        assert int(p["lastpause"]) >= before and p["privilege"] == "agent,all"
        states = [parse_frame(f) for f in frames if "DeviceStateChange" in f]
        assert states[0]["device"].startswith("Queue:dxe-") and states[0]["state"] == "INUSE"

        # unpause in one queue: one event, reason cleared, LastPause kept (as Asterisk 22 does)
        await c.send("QueuePause", Interface="Local/8001@agents", Queue=queues[0], Paused="false")
        frames = await asyncio.wait_for(
            c.frames_until(lambda f: "Event: QueueMemberPause" in f), 10
        )
        (p2,) = [parse_frame(f) for f in frames if "Event: QueueMemberPause" in f]
        assert (p2["queue"], p2["paused"], p2["pausedreason"]) == (queues[0], "0", "")
        assert p2["lastpause"] == p["lastpause"]
        c.writer.close()
    finally:
        await server.close()


async def _more_pauses(c: Client, n: int) -> list[str]:
    """The rest of one QueuePause's events: read up to a Ping's answer, which comes after them."""
    aid = await c.send("Ping")
    frames = await asyncio.wait_for(c.frames_until(lambda f: f"ActionID: {aid}" in f), 10)
    return [f for f in frames if "ActionID" not in f]


async def test_the_bridge_sees_the_pause(settings, aredis):
    server = await make_server("scenario-answered", pause_at={1: 1})
    bridge = make_bridge(settings, server, redis=aredis)
    await bridge.start()
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        agent = bridge.state.agents["Local/8002@agents"]
        assert agent.shown_state(time.time())[0] != "paused"
        await bridge.conn.send(
            {"Action": "QueuePause", "Interface": "Local/8002@agents", "Paused": "true",
             "Reason": "培训"}, timeout=5,
        )  # fmt: skip
        await sync_point(bridge)
        agent = bridge.state.agents["Local/8002@agents"]
        assert agent.queues and all(m.paused for m in agent.queues.values())
        assert agent.shown_state(time.time()) == ("paused", "培训")
    finally:
        await bridge.stop()
        await server.close()
