"""The state machine alone: no sockets, no clock; events in, state out."""

from __future__ import annotations

from callcenter.ami.handlers import Dispatcher
from callcenter.ami.state import LiveState


def ev(name, **kw):
    return name, {k.lower(): v for k, v in kw.items()}


def apply(d, items, now=100.0):
    for name, f in items:
        d.apply(name, f, now)


def member(queue, iface, **kw):
    return ev(
        "QueueMemberStatus",
        Queue=queue,
        Interface=iface,
        MemberName="张敏",
        Status="1",
        Paused="0",
        **kw,
    )


def test_agent_states_and_wrap_up():
    st = LiveState()
    d = Dispatcher(st)
    a = "PJSIP/8001"
    apply(d, [member("q1", a, Wrapuptime="10")])
    assert st.agents[a].state(100) == "ready"
    apply(d, [ev("QueueMemberPause", Queue="q1", Interface=a, Paused="1", PausedReason="午休")])
    assert st.agents[a].state(100) == "paused"
    assert st.agents[a].live_dict(100)["pause_reason"] == "午休"
    apply(d, [ev("QueueMemberPause", Queue="q1", Interface=a, Paused="0", PausedReason="")])
    apply(
        d,
        [
            ev(
                "Newchannel",
                Uniqueid="1.1",
                Linkedid="1.1",
                Channel="PJSIP/caller-01",
                CallerIDNum="13800138000",
                CallerIDName="张三",
                ChannelStateDesc="Up",
            ),
            ev(
                "QueueCallerJoin",
                Uniqueid="1.1",
                Linkedid="1.1",
                Channel="PJSIP/caller-01",
                Queue="q1",
                Position="1",
            ),
            ev(
                "AgentConnect",
                Uniqueid="1.1",
                Queue="q1",
                Interface=a,
                MemberName="张敏",
                HoldTime="4",
            ),
        ],
    )
    assert st.agents[a].state(100) == "on-call"
    assert st.calls["1.1"].status == "talking" and st.queues["q1"].waiting == {}
    d.apply(
        "AgentComplete",
        {"uniqueid": "1.1", "queue": "q1", "interface": a, "talktime": "30", "reason": "caller"},
        130.0,
    )
    assert st.agents[a].state(135) == "wrap-up"
    assert st.agents[a].state(141) == "ready"
    d.apply("Hangup", {"uniqueid": "1.1", "cause": "16"}, 131.0)
    (call,) = st.drain_ended()
    rec = call.record()
    assert rec["disposition"] == "answered" and rec["wait_seconds"] == 4
    assert rec["talk_seconds"] == 30 and rec["caller"] == "13800138000"
    apply(d, [ev("QueueMemberRemoved", Queue="q1", Interface=a)])
    assert st.agents[a].state(200) == "logged-out"


def test_resync_does_not_undo_newer_events():
    """A channel that hung up after the resync began must not come back from the snapshot."""
    st = LiveState()
    d = Dispatcher(st)
    chan = {
        "uniqueid": "9.1",
        "linkedid": "9.1",
        "channel": "PJSIP/c-9",
        "calleridnum": "13900000000",
        "channelstatedesc": "Up",
    }
    st.begin_resync()
    d.apply("Newchannel", {**chan}, 10.0)
    d.apply("Hangup", {"uniqueid": "9.1", "cause": "16"}, 11.0)
    rec = st.apply_resync([chan, {**chan, "uniqueid": "9.2", "channel": "PJSIP/c-9b"}], [], 12.0)
    assert "9.1" not in st.legs and "9.2" in st.legs
    assert rec.channels_added == 1 and rec.channels_removed == 0
    assert len(st.drain_ended()) == 1


def test_resync_queue_rows_reconcile_members_and_entries():
    st = LiveState()
    d = Dispatcher(st)
    apply(d, [member("q1", "PJSIP/8009")])  # a member Asterisk no longer has
    d.apply("Newchannel", {"uniqueid": "5.1", "linkedid": "5.1", "channel": "PJSIP/c-5"}, 1.0)
    st.begin_resync()
    rows = [
        {"event": "QueueParams", "queue": "q1", "completed": "3", "abandoned": "1"},
        {
            "event": "QueueMember",
            "queue": "q1",
            "location": "PJSIP/8001",
            "name": "张敏",
            "paused": "1",
            "pausedreason": "会议",
            "status": "1",
        },
        {"event": "QueueEntry", "queue": "q1", "uniqueid": "5.1", "position": "1", "wait": "7"},
    ]
    chans = [{"uniqueid": "5.1", "linkedid": "5.1", "channel": "PJSIP/c-5"}]
    rec = st.apply_resync(chans, rows, 20.0)
    assert rec.members_added == 1 and rec.members_removed == 1 and rec.queue_entries_added == 1
    assert "q1" not in st.agents["PJSIP/8009"].queues
    assert st.agents["PJSIP/8001"].state(20) == "paused"
    assert st.calls["5.1"].live_dict(20.0)["wait_seconds"] == 7
    assert st.queues["q1"].completed == 3


def test_malformed_and_unknown_events_are_counted_not_raised():
    st = LiveState()
    d = Dispatcher(st)
    assert d.apply("Hangup", {"channel": "x"}, 1.0) is False  # no Uniqueid
    assert d.apply("QueueCallerJoin", {"uniqueid": "1"}, 1.0) is False  # no Queue
    assert d.apply("SomethingNew", {"a": "b"}, 1.0) is False
    assert d.apply("VarSet", {"uniqueid": "nope", "variable": "IVR_PATH", "value": "1"}, 1.0)
    assert d.counts() == {"handled": 1, "ignored": 1, "malformed": 2}


def test_project_fastagi_variables():
    """ivr/agi.py sets IVR_PATH (keys, "t" = timeout), IVR_OPTION, IVR_CATEGORY, IVR_RESULT."""
    st = LiveState()
    d = Dispatcher(st)
    d.apply("Newchannel", {"uniqueid": "3.1", "linkedid": "3.1", "channel": "PJSIP/c-3",
                           "calleridnum": "13700000000"}, 1.0)  # fmt: skip
    for var, val in [
        ("IVR_PATH", "t"),
        ("IVR_PATH", "t-9"),
        ("IVR_PATH", "t-9-2"),
        ("IVR_OPTION", "2"),
        ("IVR_CATEGORY", "government"),
        ("IVR_RESULT", "voicemail"),
        ("VMSTATUS", "SUCCESS"),
        ("SOMETHING_ELSE", "x"),
    ]:
        d.apply("VarSet", {"uniqueid": "3.1", "variable": var, "value": val}, 2.0)
    call = st.calls["3.1"]
    assert call.path == "t-9-2" and call.ivr_choices == ["2"]
    assert call.category == "government" and call.status == "voicemail"
    d.apply("Hangup", {"uniqueid": "3.1", "cause": "16"}, 3.0)
    (ended,) = st.drain_ended()
    assert ended.record()["disposition"] == "voicemail"
