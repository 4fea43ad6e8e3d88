"""Connection life: login failures, backoff, mid-stream drops, Asterisk restarts, bad frames."""

from __future__ import annotations

import asyncio
import json

import pytest
from replay_server import (
    AMI_DIR,
    Transcript,
    event_index,
    make_bridge,
    make_server,
    parse_frame,
    sync_point,
)
from sqlmodel import Session, select

from callcenter.ami.connection import BridgeProtocol
from callcenter.ami.handlers import Dispatcher
from callcenter.live import load_snapshot
from callcenter.models import CallRecord
from ticketing.models import CallbackTask


def records(engine):
    with Session(engine) as s:
        return s.exec(select(CallRecord)).all()


async def wait_until(pred, timeout=15.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


def feed(dispatcher: Dispatcher, name: str, upto_event: str, nth: int = 1) -> None:
    """Apply a transcript's events directly (a call that was live before a restart)."""
    from panoramisk.message import Message

    tr = Transcript.load(AMI_DIR, name)
    n = event_index(tr, 1, upto_event, nth)
    for f in tr.conns[1].stream[:n]:
        m = Message.from_line(f.data.strip())
        dispatcher.apply(m["event"], None, 1000.0, m)


async def test_failed_login_then_retry_succeeds(settings, engine, aredis):
    server = await make_server("actions-login-failed")
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await wait_until(lambda: bridge.conn.authenticated)
        st = bridge.conn.stats
        assert st.login_failures == 1
        assert "Authentication failed" in st.last_error and "callcenter" in st.last_error
        assert server.accepted == 2 and len(st.delays) == 1
        await sync_point(bridge)
    finally:
        await bridge.stop()
        await server.close()


async def test_wrong_secret_backs_off_exponentially(settings, engine):
    server = await make_server("scenario-answered")
    bridge = make_bridge(settings, server, engine=engine, secret="wrong-secret", max_attempts=4)
    try:
        await asyncio.wait_for(bridge.conn.run(), 20)
        st = bridge.conn.stats
        assert st.login_failures == 4 and server.accepted == 4
        assert "refused: Authentication failed" in st.last_error
        assert "CALLCENTER_ASTERISK__<n>__USERNAME / __SECRET" in st.last_error  # what to fix
        d = st.delays
        assert len(d) == 3 and d[0] < d[1] < d[2]
        assert not bridge.conn.authenticated
        from callcenter.ami.connection import AmiNotConnected

        with pytest.raises(AmiNotConnected):
            await bridge.actions.hangup("PJSIP/x-1")
    finally:
        await bridge.stop()
        await server.close()


async def test_mid_stream_disconnect_resync_adds_what_was_missed(settings, engine, aredis, sredis):
    """Drop right after the caller queued; on reconnect Asterisk reports 8 channels."""
    probe = Transcript.load(AMI_DIR, "actions-status")
    n = event_index(probe, 1, "QueueCallerJoin")
    server = await make_server("actions-status", drop_after={1: n}, resume=True, conns=[1, 1])
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
        st = bridge.conn.stats
        assert st.disconnects == 1 and st.connects == 2 and st.resyncs == 2
        second = bridge.reconciled[1]
        assert second["channels_added"] == 6  # the agent legs rung while we were away
        assert second["queue_entries_added"] == 0  # the caller was already known waiting
        (rec,) = records(engine)
        assert rec.call_id == "1795569546.41" and rec.disposition == "abandoned"
        assert rec.queue == "dxe-general" and rec.wait_seconds == 3 and rec.ivr_path == "0"
        with Session(engine) as s:
            assert len(s.exec(select(CallbackTask)).all()) == 1
        snap = load_snapshot(sredis, settings)
        assert snap["calls"] == []
        assert all(q["waiting"] == 0 for q in snap["queues"])
        assert snap["servers"]["pbx1"]["reconciled"]["channels_added"] == 6
    finally:
        await bridge.stop()
        await server.close()


async def test_mid_stream_disconnect_missing_the_hangup(settings, engine, aredis, sredis):
    """The call ends while we are away: resync finds no channels and closes it once."""
    probe = Transcript.load(AMI_DIR, "scenario-answered")
    n = event_index(probe, 1, "AgentConnect")
    end = event_index(probe, 1, "Hangup", 4)
    server = await make_server(
        "scenario-answered", drop_after={1: n}, resume=True, resume_skip=end - n, conns=[1, 1]
    )
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
        rec2 = bridge.reconciled[1]
        assert rec2["calls_ended"] == 1 and rec2["channels_removed"] == 4
        (rec,) = records(engine)
        assert rec.disposition == "answered" and rec.extra["ended_by"] == "resync"
        assert rec.agent_name == "张敏"
        assert load_snapshot(sredis, settings)["calls"] == []
    finally:
        await bridge.stop()
        await server.close()


@pytest.mark.parametrize(
    ("name", "conns", "connects"),
    [("scenario-restart", [1, 2], 2), ("scenario-restart-cold", [1, 2, 3], 3)],
)
async def test_restart_converges(settings, engine, aredis, sredis, name, conns, connects):
    """A call is live when Asterisk restarts; after reconnect + resync it is gone, recorded once."""
    probe = Transcript.load(AMI_DIR, name)
    shutdown = event_index(probe, 1, "Shutdown")
    server = await make_server(name, conns=conns, down_for=0.15, pause_at={1: shutdown - 1})
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        feed(bridge.dispatcher, "scenario-answered", "BridgeEnter", 2)  # live call at restart
        assert len(bridge.state.calls) == 1
        server.resume_event.set()
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await bridge.settle()
        st = bridge.conn.stats
        assert st.connects == connects and st.resyncs == 2
        assert st.connect_failures >= 1  # refused while the PBX was down
        last = bridge.reconciled[-1]
        assert last["calls_ended"] == 1 and last["channels_removed"] == 4
        assert bridge.state.calls == {}
        (rec,) = records(engine)
        assert rec.extra["ended_by"] == "resync"
        snap = load_snapshot(sredis, settings)
        assert snap["calls"] == [] and len(snap["agents"]) == 3
        assert snap["servers"]["pbx1"]["connection"]["resyncs"] == 2
        assert snap["servers"]["pbx1"]["pbx"]["uptime"] == "0"  # FullyBooted of the new PBX
    finally:
        await bridge.stop()
        await server.close()


GARBAGE = {
    3: b"\xff\xfe\x00garbage with no structure\r\n\r\n",
    10: b"Event Hangup\r\nno colon on any line\r\n\r\n",
    20: b"Event: FooBarBaz\r\nWhatever: 1\r\n\r\n",
    30: b"Event: Hangup\r\nChannel: Local/x-1;1\r\n\r\n",  # known event, Uniqueid missing
    40: b"Event: VarSet\r\nValue: " + b"x" * (2 << 20) + b"\r\n\r\n",  # 2 MiB frame
    50: b"Event: QueueCallerJoin\r\nQueue: dxe-general\r\n\r\n",
}


async def test_malformed_frames_are_skipped_and_counted(settings, engine, aredis):
    server = await make_server("scenario-answered", inject=GARBAGE, chunk=5)
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 60)
        await sync_point(bridge)
        await bridge.settle()
        st, d = bridge.conn.stats, bridge.dispatcher
        assert st.frames_unparsable == 2  # binary junk, and a frame with no "Key: value"
        assert st.frames_oversized == 1
        assert d.malformed == 2 and "QueueCallerJoin: KeyError" in d.last_error
        assert d.ignored >= 1  # FooBarBaz and the noise events
        (rec,) = records(engine)  # the call itself is intact, names included
        assert rec.caller_name == "张三" and rec.agent_name == "张敏"
        assert rec.disposition == "answered" and rec.talk_seconds == 20
    finally:
        await bridge.stop()
        await server.close()


class _Factory:
    def __init__(self, raw=False):
        self.errors, self.events, self.raw = [], [], []
        self.owner = self
        self.raw_event = (lambda name, frame: self.raw.append((name, frame))) if raw else None

    def frame_error(self, kind, frame):
        self.errors.append(kind)

    def dispatch(self, m):
        self.events.append(m)


def test_protocol_keeps_utf8_split_across_reads():
    """panoramisk decodes each read alone; a 3-byte 张 split in two must survive here."""

    class T:
        def close(self):
            pass

    from callcenter.ami.handlers import parse_fields

    raw = "Event: UserEvent\r\nCallerIDName: 张三\r\nChoiceName: 企业服务\r\n\r\n".encode()
    cut = raw.index("张".encode()) + 1
    for fast in (False, True):
        p = BridgeProtocol()
        p.connection_made(T())
        p.factory = _Factory(raw=fast)
        p.data_received(raw[:cut])
        p.data_received(raw[cut:])
        if fast:  # plain events reach the bridge unparsed, and parse the same way
            ((name, frame),) = p.factory.raw
            m = parse_fields(frame)
            assert name == "UserEvent" and m["calleridname"] == "张三"
        else:
            (m,) = p.factory.events
            assert m["CallerIDName"] == "张三" and m["ChoiceName"] == "企业服务"
        assert p.factory.errors == []


def test_transcripts_replay_byte_for_byte():
    """The replay peer refuses transcripts whose frames differ from the captured bytes."""
    for name in ("scenario-answered", "scenario-restart-cold", "actions-login-failed"):
        tr = Transcript.load(AMI_DIR, name, verify=True)
        assert tr.conns[1].banner == "Asterisk Call Manager/11.0.0\r\n"
    bad = AMI_DIR / "scenario-answered.jsonl"
    lines = bad.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[4])["dir"] == "rx"
    assert parse_frame(json.loads(lines[4])["data"])["actionid"] == "ans-001"


async def test_periodic_resync_clears_a_lost_hangup(settings, engine, aredis):
    server = await make_server("scenario-voicemail")
    bridge = make_bridge(settings, server, redis=aredis, engine=engine, resync_interval=0.05)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        bridge.dispatcher.apply(
            "Newchannel",
            {"uniqueid": "777.1", "linkedid": "777.1", "channel": "PJSIP/ghost-1"},
            1.0,
        )  # its Hangup was never seen
        await wait_until(lambda: "777.1" not in bridge.state.legs)
        assert any(r["channels_removed"] == 1 for r in bridge.reconciled[1:])
        await bridge.settle()
        ids = {r.call_id for r in records(engine)}
        assert ids == {"1795569383.14", "777.1"}
    finally:
        await bridge.stop()
        await server.close()


async def test_protocol_is_bound_before_the_first_bytes_arrive():
    """Asterisk's banner can arrive before panoramisk's connection callback runs: the protocol
    must already know its manager (it once raised AttributeError and dropped the connection)."""
    from callcenter.ami.connection import AmiConnection, BridgeManager

    conn = AmiConnection.__new__(AmiConnection)  # only the attribute the protocol reads
    conn.raw_event = None
    manager = BridgeManager(conn, host="127.0.0.1", port=1, username="u", secret="s")
    protocol = manager.config["protocol_factory"]()

    class _Transport:
        def write(self, data):
            pass

        def close(self):
            pass

    protocol.connection_made(_Transport())
    assert protocol.factory is manager
    protocol.data_received(b"Asterisk Call Manager/9.0.0\r\n")
    assert protocol.version == "9.0.0"
