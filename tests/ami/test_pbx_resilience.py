"""Issue 16: no call lost whatever restarts, and a live view that never lies.

State machine, real Redis (facts a restarted bridge reloads), real databases (call records,
tickets, callback tasks), a real CDR CSV in the format config/asterisk/cdr_custom.conf writes.
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from callcenter.ami import facts as facts_mod
from callcenter.ami.calls import persist_call
from callcenter.ami.handlers import Dispatcher
from callcenter.ami.publish import Publisher
from callcenter.ami.reconcile import COLUMNS, CdrCursor, reconcile
from callcenter.ami.state import LiveState
from callcenter.models import CallRecord
from ticketing import Ticket
from ticketing.models import CallbackTask

CALLER = "Local/12345@dxe-inbound-00000001;2"
AGENT_IF = "Local/8001@dxe-test-agents/n"
AGENT_CH = "Local/8001@dxe-test-agents-00000002;1"


def ev(name, **kw):
    return name, {k.lower(): v for k, v in kw.items()}


def feed(d: Dispatcher, items, now: float) -> None:
    for name, f in items:
        d.apply(name, f, now)


def answered_call(uid="1795569321.1", caller=CALLER, queue="dxe-government"):
    """Events of a caller who chose 2 in the FastAGI menu and is talking to agent 8001."""
    lid = uid
    return [
        ev(
            "Newchannel",
            Uniqueid=uid,
            Linkedid=lid,
            Channel=caller,
            CallerIDNum="13800138000",
            CallerIDName="张三",
            ChannelStateDesc="Ring",
        ),
        ev("VarSet", Uniqueid=uid, Variable="IVR_OPTION", Value="government"),
        ev("VarSet", Uniqueid=uid, Variable="IVR_CATEGORY", Value="government"),
        ev("VarSet", Uniqueid=uid, Variable="IVR_PATH", Value="2"),
        ev(
            "VarSet",
            Uniqueid=uid,
            Variable="MIXMONITOR_FILENAME",
            Value=f"/var/spool/asterisk/monitor/dxe-x-13800138000-{uid}.wav",
        ),
        ev(
            "QueueCallerJoin",
            Uniqueid=uid,
            Linkedid=lid,
            Channel=caller,
            Queue=queue,
            Position="1",
            CallerIDNum="13800138000",
        ),
        ev("Newchannel", Uniqueid=uid + "2", Linkedid=lid, Channel=AGENT_CH),
        ev(
            "AgentConnect",
            Uniqueid=uid,
            Queue=queue,
            Interface=AGENT_IF,
            MemberName="张敏",
            HoldTime="7",
        ),
    ]


def channel_rows(uid: str) -> list[dict[str, str]]:
    return [
        {
            "uniqueid": uid,
            "linkedid": uid,
            "channel": CALLER,
            "calleridnum": "13800138000",
            "channelstatedesc": "Up",
            "application": "Queue",
            "duration": "00:00:40",
        },
        {
            "uniqueid": uid + "2",
            "linkedid": uid,
            "channel": AGENT_CH,
            "channelstatedesc": "Up",
            "application": "AppQueue",
        },
    ]


async def test_restarted_bridge_ends_a_call_with_the_facts_the_old_one_knew(
    aredis, settings, engine
):
    ns, server = settings.redis_namespace, "pbx1"
    old = LiveState(server)
    feed(Dispatcher(old), answered_call(), 100.0)
    assert await Publisher(aredis, ns, server).flush(old, 101.0)
    # the old bridge dies here (no settle, no journal of this call); a new one starts
    new = LiveState(server)
    new.restored_facts = await facts_mod.load(aredis, ns, server)
    assert "1795569321.1" in new.restored_facts
    new.begin_resync()
    new.apply_resync(channel_rows("1795569321.1"), [], 150.0)
    call = new.calls["1795569321.1"]
    assert call.restored and call.answered == 100.0 and call.agent == AGENT_IF
    d = Dispatcher(new)
    feed(
        d,
        [
            ev(
                "AgentComplete",
                Uniqueid="1795569321.1",
                Queue="dxe-government",
                Interface=AGENT_IF,
                TalkTime="60",
                Reason="caller",
            ),
            ev("Hangup", Uniqueid="1795569321.12", Cause="16"),
            ev("Hangup", Uniqueid="1795569321.1", Cause="16"),
        ],
        160.0,
    )
    (ended,) = new.drain_ended()
    rec = ended.record()
    assert rec["disposition"] == "answered" and rec["ivr_path"] == "2"
    assert rec["category"] == "government" and rec["talk_seconds"] == 60
    assert rec["started"] == 100.0 and rec["wait_seconds"] == 7 and rec["recording"]
    assert persist_call(engine, settings, rec, server) == "stored"
    with Session(engine) as s:
        row = s.exec(select(CallRecord)).one()
        assert row.ticket_id is not None and row.agent == AGENT_IF
        assert s.get(Ticket, row.ticket_id).category == "government"
    # once the call ended the next flush drops its facts
    pub = Publisher(aredis, ns, server)
    await pub.flush(new, 161.0)
    assert "1795569321.1" not in await facts_mod.load(aredis, ns, server)


async def test_without_saved_facts_a_rediscovered_call_is_only_discovered(aredis, settings):
    st = LiveState("pbx1")
    st.restored_facts = await facts_mod.load(aredis, settings.redis_namespace, "pbx1")
    st.begin_resync()
    st.apply_resync(channel_rows("9.1"), [], 10.0)
    assert st.calls["9.1"].discovered and not st.calls["9.1"].restored


def test_pbx_crash_ends_calls_at_the_drop_with_talk_time_and_callbacks(settings, engine):
    st = LiveState("pbx1")
    d = Dispatcher(st)
    feed(d, answered_call("1.1"), 100.0)
    feed(
        d,
        [
            ev(
                "Newchannel",
                Uniqueid="2.1",
                Linkedid="2.1",
                Channel="Local/12345@dxe-inbound-3;2",
                CallerIDNum="13900139000",
            ),
            ev("VarSet", Uniqueid="2.1", Variable="IVR_PATH", Value="3"),
            ev(
                "QueueCallerJoin",
                Uniqueid="2.1",
                Linkedid="2.1",
                Channel="Local/12345@dxe-inbound-3;2",
                Queue="dxe-complaint",
                Position="1",
            ),
        ],
        110.0,
    )
    st.connection_lost(130.0)
    assert all(c.live_dict(131)["unconfirmed"] for c in st.calls.values())
    st.begin_resync()
    rec = st.apply_resync([], [], 160.0)  # the PBX came back empty (kill -9, restart)
    assert rec.calls_ended == 2
    ended = {c.call_id: c.record() for c in st.drain_ended()}
    a, q = ended["1.1"], ended["2.1"]
    assert a["ended"] == 130.0 and a["talk_seconds"] == 30 and a["disposition"] == "answered"
    assert q["ended"] == 130.0 and q["queued_abandon"] and q["wait_seconds"] == 20
    for r in ended.values():
        persist_call(engine, settings, r, "pbx1")
    with Session(engine) as s:
        tasks = s.exec(select(CallbackTask)).all()
        assert [(t.call_id, t.reason) for t in tasks] == [("2.1", "abandoned")]
        t = s.exec(select(Ticket).where(Ticket.id == tasks[0].ticket_id)).one()
        assert "请回拨" in t.content
    assert st.disconnected_at is None


def test_agent_complete_without_uniqueid_is_matched_by_channel_then_member():
    st = LiveState("pbx1")
    d = Dispatcher(st)
    feed(d, answered_call("5.1"), 100.0)
    feed(
        d,
        [
            ev(
                "AgentComplete",
                Channel=CALLER,
                Queue="dxe-government",
                Interface=AGENT_IF,
                TalkTime="42",
                Reason="agent",
            )
        ],
        150.0,
    )
    assert st.calls["5.1"].talk_seconds == 42 and d.malformed == 0
    feed(d, answered_call("6.1", caller="Local/12345@dxe-inbound-7;2"), 160.0)
    feed(
        d,
        [
            ev(
                "AgentComplete",
                Queue="dxe-government",
                Interface=AGENT_IF,
                TalkTime="9",
                Reason="agent",
            )
        ],
        170.0,
    )
    assert st.calls["6.1"].talk_seconds == 9


def test_queue_positions_renumber_and_join_times_are_published():
    st = LiveState("pbx1")
    d = Dispatcher(st)
    for i in range(3):
        uid = f"{i}.1"
        ch = f"Local/12345@dxe-inbound-{i};2"
        feed(
            d,
            [
                ev("Newchannel", Uniqueid=uid, Linkedid=uid, Channel=ch),
                ev(
                    "QueueCallerJoin",
                    Uniqueid=uid,
                    Linkedid=uid,
                    Channel=ch,
                    Queue="dxe-general",
                    Position=str(i + 1),
                ),
            ],
            100.0 + i,
        )
    feed(d, [ev("QueueCallerAbandon", Uniqueid="0.1", Queue="dxe-general", HoldTime="5")], 105)
    assert [st.calls[f"{i}.1"].position for i in (1, 2)] == [1, 2]
    feed(d, [ev("QueueCallerLeave", Uniqueid="1.1", Queue="dxe-general")], 106.0)
    assert st.calls["2.1"].position == 1
    live = st.calls["2.1"].live_dict(150.0)
    assert live["joined_at"] == 102.0 and live["wait_seconds"] == 48
    q = st.queues["dxe-general"].live_dict(st, 150.0)
    assert q["callers"][0]["joined_at"] == 102.0 and q["callers"][0]["position"] == 1


def test_agent_paused_in_one_queue_is_ready_in_the_other():
    st = LiveState("pbx1")
    d = Dispatcher(st)
    for q in ("dxe-general", "dxe-government"):
        feed(
            d,
            [
                ev(
                    "QueueMemberStatus",
                    Queue=q,
                    Interface=AGENT_IF,
                    MemberName="张敏",
                    Status="1",
                    Paused="0",
                )
            ],
            100.0,
        )
    feed(
        d,
        [
            ev(
                "QueueMemberPause",
                Queue="dxe-general",
                Interface=AGENT_IF,
                Paused="1",
                PausedReason="培训",
            )
        ],
        101.0,
    )
    live = st.agents[AGENT_IF].live_dict(102.0)
    assert live["state"] == "ready" and live["paused_queues"] == ["dxe-general"]
    assert live["queues"]["dxe-general"]["state"] == "paused"
    assert live["queues"]["dxe-government"]["state"] == "ready"
    feed(
        d,
        [
            ev(
                "QueueMemberPause",
                Queue="dxe-government",
                Interface=AGENT_IF,
                Paused="1",
                PausedReason="培训",
            )
        ],
        103.0,
    )
    assert st.agents[AGENT_IF].state(104.0) == "paused"


def test_agi_fallback_is_counted_and_mailbox_without_message_gets_a_callback(settings, engine):
    st = LiveState("pbx1")
    d = Dispatcher(st)
    ch = "Local/12345@dxe-inbound-9;2"
    feed(
        d,
        [
            ev("Newchannel", Uniqueid="8.1", Linkedid="8.1", Channel=ch, CallerIDNum="13700137000"),
            ev("UserEvent", UserEvent="DxeAfterHours", Uniqueid="8.1", Mailbox="12345@dianxiaoer"),
            ev(
                "UserEvent",
                UserEvent="DxeCallEnd",
                Uniqueid="8.1",
                IVRResult="fallback",
                IVRPath="",
                VMStatus="FAILED",
            ),
            ev("Hangup", Uniqueid="8.1", Cause="16"),
        ],
        100.0,
    )
    assert st.counters["ivr_fallbacks"] == 1
    (call,) = st.drain_ended()
    rec = call.record()
    assert rec["ivr_fallback"] and rec["vm_no_message"] and rec["disposition"] != "voicemail"
    persist_call(engine, settings, rec, "pbx1")
    with Session(engine) as s:
        row = s.exec(select(CallRecord)).one()
        assert row.extra["ivr_fallback"] is True and row.ticket_id is not None
        assert "未留言" in s.get(Ticket, row.ticket_id).content
        (task,) = s.exec(select(CallbackTask)).all()
        assert task.reason == "voicemail" and task.ticket_id == row.ticket_id


def _cdr(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        for r in rows:
            w.writerow([r.get(c, "") for c in COLUMNS])


def _leg(lid, uid, **kw):
    base = {
        "linkedid": lid,
        "uniqueid": uid,
        "channel": f"Local/12345@dxe-inbound-{uid};2",
        "src": "13800138000",
        "clid": '"王五" <13800138000>',
        "dcontext": "dxe-inbound",
        "disposition": "ANSWERED",
    }
    return base | kw


def test_cdr_reconcile_files_missed_calls_once_and_says_what_is_unknown(settings, engine, tmp_path):
    csv_path = tmp_path / "dxe.csv"
    _cdr(
        csv_path,
        [
            # answered: the caller leg in the menu, then the bridged leg with the agent
            _leg(
                "100.1",
                "100.1",
                start="1000",
                answer="1000",
                end="1010",
                billsec="10",
                lastapp="AGI",
                ivr_path="1",
                ivr_option="enterprise",
                ivr_category="enterprise",
                ivr_result="queue",
                dxe_queue="dxe-enterprise",
            ),
            _leg(
                "100.1",
                "100.1",
                start="1010",
                answer="1015",
                end="1075",
                billsec="60",
                lastapp="Queue",
                dstchannel="Local/8001@dxe-test-agents-0000000a;1",
                dxe_queue="dxe-enterprise",
                recording="/var/spool/asterisk/monitor/a.wav",
            ),
            # abandoned in the queue
            _leg(
                "200.1",
                "200.1",
                start="1100",
                answer="1100",
                end="1130",
                billsec="30",
                lastapp="Queue",
                ivr_path="3",
                ivr_option="complaint",
                ivr_result="queue",
                dxe_queue="dxe-complaint",
                src="13900139000",
                clid="<13900139000>",
            ),
            # hung up during the greeting: a record, no ticket
            _leg("300.1", "300.1", start="1200", answer="1200", end="1202", lastapp="AGI"),
            # seen live already (stored): never twice
            _leg(
                "400.1",
                "400.1",
                start="1300",
                answer="1300",
                end="1340",
                lastapp="Queue",
                ivr_path="2",
                ivr_result="queue",
                dxe_queue="dxe-government",
            ),
            # ended after the login: the live bridge sees it
            _leg(
                "500.1",
                "500.1",
                start="1900",
                answer="1900",
                end="2100",
                lastapp="Queue",
                ivr_path="2",
                ivr_result="queue",
                dxe_queue="dxe-government",
            ),
        ],
    )
    with csv_path.open("a") as fh:
        fh.write('garbage,"line\n')
    persist_call(
        engine,
        settings,
        {
            "call_id": "400.1",
            "caller": "13800138000",
            "started": 1300.0,
            "ended": 1340.0,
            "disposition": "answered",
            "ivr_path": "2",
            "queue": "dxe-government",
        },
        "pbx1",
    )
    cursor = CdrCursor(tmp_path / "cursor.json")
    rep = reconcile(
        engine, settings, "pbx1", csv_path, cursor, until=2000.0, skip={"999.1"}, facts={}
    )
    assert rep.as_dict() | {} == {
        "rows": 6,
        "calls": 4,
        "stored": 3,
        "duplicates": 1,
        "skipped_live": 0,
        "failed": 0,
    } | {"rows": rep.rows}
    again = reconcile(engine, settings, "pbx1", csv_path, cursor, until=2000.0)
    assert again.stored == 0
    with Session(engine) as s:
        rows = {r.call_id: r for r in s.exec(select(CallRecord)).all()}
        a, b, c = rows["100.1"], rows["200.1"], rows["300.1"]
        assert a.disposition == "answered" and a.talk_seconds == 60
        assert a.agent == "Local/8001@dxe-test-agents" and a.category == "enterprise"
        assert a.recording_path.endswith("a.wav") and a.extra["source"] == "cdr"
        ta = s.get(Ticket, a.ticket_id)
        assert "未知" in ta.content and "排队等待时长" in ta.content
        assert b.disposition == "abandoned" and b.ticket_id is not None
        (task,) = s.exec(select(CallbackTask)).all()
        assert task.call_id == "200.1" and task.reason == "abandoned"
        assert c.ticket_id is None and "500.1" not in rows
        assert len(s.exec(select(Ticket)).all()) == 3  # 100, 200 and the live 400


def test_cdr_reconcile_uses_facts_the_bridge_saved_before_going_away(settings, engine, tmp_path):
    csv_path = tmp_path / "dxe.csv"
    _cdr(
        csv_path,
        [
            _leg(
                "7.1",
                "7.1",
                start="1000",
                answer="1000",
                end="1050",
                billsec="0",
                lastapp="Queue",
                dxe_queue="dxe-general",
            )
        ],
    )
    rep = reconcile(
        engine,
        settings,
        "pbx1",
        csv_path,
        CdrCursor(tmp_path / "c.json"),
        until=2000.0,
        facts={"7.1": {"ivr_choices": ["operator"], "ivr_path": "0", "joined_at": 1010.0}},
    )
    assert rep.stored == 1
    with Session(engine) as s:
        row = s.exec(select(CallRecord)).one()
        assert row.ivr_path == "0" and row.wait_seconds == 40
        assert "排队等待时长" not in s.get(Ticket, row.ticket_id).content


@pytest.mark.parametrize("missing", ["secret", "pin"])
def test_write_config_names_the_setting_to_fill(settings, missing, tmp_path):
    from pydantic import SecretStr

    from callcenter.asterisk_config import AsteriskConfigError, write_config

    srv = settings.asterisk[0].model_copy(
        update={
            "secret": SecretStr("" if missing == "secret" else "s3"),
            "voicemail_pin": SecretStr("" if missing == "pin" else "4321"),
        }
    )
    s2 = settings.model_copy(update={"asterisk": [srv]})
    with pytest.raises(AsteriskConfigError, match="CALLCENTER_ASTERISK__0__"):
        write_config(s2, tmp_path / "out")


def test_write_config_fills_each_shared_value_once(settings, tmp_path):
    from pydantic import SecretStr

    from callcenter.asterisk_config import write_config

    srv = settings.asterisk[0].model_copy(
        update={
            "secret": SecretStr("abc123"),
            "voicemail_pin": SecretStr("4321"),
            "port": 18555,
            "username": "dxe",
        }
    )
    s2 = settings.model_copy(update={"asterisk": [srv], "agi_port": 18556, "agi_host": "0.0.0.0"})
    write_config(s2, tmp_path / "out")
    ext = (tmp_path / "out" / "extensions.conf").read_text()
    man = (tmp_path / "out" / "manager.conf").read_text()
    vm = (tmp_path / "out" / "voicemail.conf").read_text()
    assert "DXE_AGI = agi://127.0.0.1:18556/ivr" in ext and "4573" not in ext
    assert "port = 18555" in man and "[dxe]" in man and "secret = abc123" in man
    assert "12345 => 4321," in vm and "REPLACE-ME" not in vm + man
    vals = dict(
        line.split("=", 1)[0].strip()
        and (line.split("=")[0].strip(), line.split("=")[1].split(";")[0].strip())
        for line in vm.splitlines()
        if "=" in line and not line.startswith(";")
    )
    assert int(vals["maxsilence"]) < int(vals["minsecs"])  # Asterisk's warning condition
    assert (tmp_path / "out" / "cdr_custom.conf").exists()
    assert oct((tmp_path / "out" / "manager.conf").stat().st_mode & 0o777) == "0o600"


def test_queue_summary_gives_asterisks_own_averages():
    st = LiveState("pbx1")
    n = st.queue_summary(
        [
            {
                "event": "QueueSummary",
                "queue": "dxe-enterprise",
                "loggedin": "2",
                "available": "1",
                "callers": "0",
                "holdtime": "2",
                "talktime": "19",
                "longestholdtime": "0",
            },
            {"event": "QueueSummaryComplete"},
        ]
    )
    assert n == 1
    q = st.queues["dxe-enterprise"].live_dict(st, 0.0)
    assert (q["holdtime"], q["talktime"], q["logged_in"], q["available"]) == (2, 19, 2, 1)
    assert "dxe-enterprise" in st.dirty_queues


async def test_bridge_over_the_replay_peer_says_at_once_when_the_link_drops(settings, aredis):
    from replay_server import make_bridge, make_server, sync_point

    server = await make_server("scenario-answered")
    bridge = make_bridge(settings, server, redis=aredis, backoff_base=5, backoff_max=5)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        assert await bridge.poll_queue_summary() >= 1  # answered from the captured library
        await bridge.settle()
        meta = await aredis.hgetall(f"{settings.redis_namespace}:live:pbx1:meta")
        assert json.loads(meta[b"connection"])["connected"] is True
        await server.close()  # the PBX goes away
        for _ in range(100):
            meta = await aredis.hgetall(f"{settings.redis_namespace}:live:pbx1:meta")
            conn = json.loads(meta[b"connection"])
            if not conn["connected"]:
                break
            await asyncio.sleep(0.05)
        assert conn["connected"] is False and conn["disconnected_since"] is not None
        ops = json.loads(meta[b"ops"])
        assert ops["connected"] is False and ops["disconnected_since"] == conn["disconnected_since"]
    finally:
        await bridge.stop()
        await server.close()


async def test_an_empty_ami_secret_names_the_setting_to_fill(settings):
    from replay_server import make_bridge, make_server

    server = await make_server("scenario-answered")
    bridge = make_bridge(settings, server, secret="", max_attempts=1)
    try:
        await asyncio.wait_for(bridge.conn.run(), 10)
        assert "CALLCENTER_ASTERISK__<n>__SECRET" in bridge.conn.stats.last_error
        assert bridge.conn.stats.login_failures == 0  # never sent: not the PBX's refusal
    finally:
        await bridge.conn.stop()
        await server.close()


def test_channel_variables_read_back_label_a_call_found_without_facts(settings, engine):
    st = LiveState("pbx1")
    st.begin_resync()
    st.apply_resync(channel_rows("3.1"), [], 200.0)
    st.readback(
        "3.1",
        {
            "IVR_OPTION": "enterprise",
            "IVR_CATEGORY": "enterprise",
            "IVR_PATH": "1",
            "IVR_QUEUE": "dxe-enterprise",
            "MEMBERINTERFACE": AGENT_IF,
            "MEMBERNAME": "张敏",
        },
        200.0,
    )
    d = Dispatcher(st)
    feed(
        d,
        [ev("Hangup", Uniqueid="3.12", Cause="16"), ev("Hangup", Uniqueid="3.1", Cause="16")],
        230.0,
    )
    (call,) = st.drain_ended()
    rec = call.record()
    assert rec["disposition"] == "answered" and rec["category"] == "enterprise"
    assert rec["agent_name"] == "张敏" and rec["queue"] == "dxe-enterprise"
    persist_call(engine, settings, rec, "pbx1")
    with Session(engine) as s:
        row = s.exec(select(CallRecord)).one()
        assert row.extra["answer_estimated"] is True
        assert "准确接通时间" in s.get(Ticket, row.ticket_id).content


async def test_read_back_gives_up_quietly_where_getvar_is_refused(settings):
    from replay_server import make_bridge, make_server, sync_point

    server = await make_server("scenario-answered")
    bridge = make_bridge(settings, server)
    await bridge.start()
    try:
        await sync_point(bridge)
        st = bridge.state
        st.begin_resync()
        st.apply_resync(channel_rows("4.1"), [], 300.0)
        assert await bridge.read_back_variables([st.calls["4.1"]]) == 0
    finally:
        await bridge.stop()
        await server.close()


def test_cdr_reconcile_leaves_calls_that_are_not_the_hotlines_alone(settings, engine, tmp_path):
    csv_path = tmp_path / "dxe.csv"
    _cdr(
        csv_path,
        [
            _leg(
                "8.1",
                "8.1",
                start="1000",
                answer="1000",
                end="1050",
                billsec="50",
                dcontext="from-internal",
                lastapp="Dial",
                dstchannel="PJSIP/8001-00000001",
            )
        ],
    )
    rep = reconcile(
        engine, settings, "pbx1", csv_path, CdrCursor(tmp_path / "c.json"), until=2000.0
    )
    assert rep.rows == 1 and rep.calls == 0 and rep.stored == 0


async def test_calls_that_ended_during_a_bridge_restart_are_filed_from_their_facts(
    aredis, settings, engine
):
    ns = settings.redis_namespace
    old = LiveState("pbx1")
    feed(Dispatcher(old), answered_call("11.1"), 100.0)
    await Publisher(aredis, ns, "pbx1").flush(old, 101.0)
    new = LiveState("pbx1")
    new.restored_facts = await facts_mod.load(aredis, ns, "pbx1")
    new.begin_resync()
    new.apply_resync([], [], 200.0)  # the call is gone: it ended while no bridge ran
    assert new.end_leftover_facts(200.0) == 1 and not new.restored_facts
    (call,) = new.drain_ended()
    rec = call.record()
    assert rec["disposition"] == "answered" and rec["talk_seconds"] == 100
    assert rec["ended_by"] == "restart" and "结束时间" in rec["unknown"]
    persist_call(engine, settings, rec, "pbx1")
    with Session(engine) as s:
        row = s.exec(select(CallRecord)).one()
        assert row.ticket_id is not None and row.agent == AGENT_IF
