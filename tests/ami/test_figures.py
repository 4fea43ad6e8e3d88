"""The wallboard figures (callcenter.figures) on the captured AMI scenarios replayed through the
real bridge, against values computed by hand from the transcripts:

  scenario-answered   dxe-enterprise  8001 张敏  wait 2 (HoldTime)  talk 20
  scenario-abandoned  dxe-complaint   abandoned after 17 s
  scenario-transfer   dxe-enterprise  8002 李强 wait 2 talk 4 → transfer → dxe-complaint 8003 王芳
                      wait 2 talk 19: one call, first queue dxe-enterprise, wait 4, talk 23
  scenario-sip-hold   dxe-enterprise  8001 张敏  wait 2  talk 30 (5 s of it on hold)
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from replay_server import make_bridge, make_server, sync_point
from sqlmodel import Session, select

from callcenter.ami.state import LiveState
from callcenter.figures import (
    alerts,
    board,
    board_config,
    day_figures,
    live_figures,
    period_figures,
    store_state_changes,
)
from callcenter.live import load_snapshot
from callcenter.models import AgentStateChange

SCENARIOS = ["scenario-answered", "scenario-abandoned", "scenario-transfer", "scenario-sip-hold"]


async def replay(settings, engine, aredis, name, **kw):
    server = await make_server(name, **kw)
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.finished.wait(), 30)
        await sync_point(bridge)
        await bridge.settle(timeout=90)  # the first ticket trains the classifier: slow on CI
    finally:
        await bridge.stop()
        await server.close()
    return bridge


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def test_day_figures_of_the_captured_calls(settings, engine, aredis):
    for name in SCENARIOS:
        await replay(settings, engine, aredis, name)
    cfg = board_config(settings)
    with Session(engine) as s:
        day = day_figures(s, cfg, now_utc())
    ent, comp, total = day["queues"]["dxe-enterprise"], day["queues"]["dxe-complaint"], day["total"]
    assert (ent["offered"], ent["answered"], ent["abandoned"]) == (3, 3, 0)
    assert ent["answered_within"] == 3 and ent["sl_answered"] == 1.0 and ent["sl_offered"] == 1.0
    assert ent["asa"] == round((2 + 4 + 2) / 3, 1)
    assert ent["talk"] == 20 + 23 + 30
    assert ent["aht"] == round((20 + 23 + 30 + ent["wrapup"]) / 3, 1)
    assert (comp["offered"], comp["answered"], comp["abandoned"], comp["short_abandoned"]) == (
        1, 0, 1, 0,
    )  # fmt: skip
    assert comp["sl_answered"] is None and comp["sl_offered"] == 0.0
    assert comp["abandon_rate"] == 1.0 and comp["sl_seconds"] == 20  # the queue's own threshold
    assert (total["offered"], total["answered"], total["abandoned"]) == (4, 3, 1)
    assert total["sl_answered"] == 1.0 and total["sl_offered"] == 0.75
    assert total["abandon_rate"] == 0.25
    agents = {a["interface"]: a for a in day["agents"].values()}
    assert agents["Local/8001@agents"]["handled"] == 2 and agents["Local/8001@agents"]["talk"] == 50
    assert agents["Local/8002@agents"]["handled"] == 1 and agents["Local/8002@agents"]["talk"] == 0
    assert agents["Local/8003@agents"]["handled"] == 1 and agents["Local/8003@agents"]["talk"] == 23
    assert sum(h["offered"] for h in day["halfhours"].values()) == 4

    # a second day's query and a bridge replaying a journal again change nothing: one row per call
    await replay(settings, engine, aredis, "scenario-answered")
    with Session(engine) as s:
        again = day_figures(s, cfg, now_utc())
    assert again["total"]["offered"] == 4


async def test_restart_mid_call_neither_resets_nor_doubles(settings, engine, aredis):
    """A call is live when Asterisk restarts (as in test_ami_connection); it is stored once, the
    day counts it once; a second bridge run over the same day adds no agent state rows for
    agents whose state did not change, and their state clock carries on."""
    from panoramisk.message import Message
    from replay_server import AMI_DIR, Transcript, event_index

    def feed(dispatcher, name: str, upto_event: str, nth: int) -> None:
        """A call that was live before the restart (today: the figures count it today)."""
        tr = Transcript.load(AMI_DIR, name)
        for f in tr.conns[1].stream[: event_index(tr, 1, upto_event, nth)]:
            m = Message.from_line(f.data.strip())
            dispatcher.apply(m["event"], None, time.time(), m)

    shutdown = event_index(Transcript.load(AMI_DIR, "scenario-restart"), 1, "Shutdown")
    server = await make_server("scenario-restart", conns=[1, 2], down_for=0.15,
                               pause_at={1: shutdown - 1})  # fmt: skip
    bridge = make_bridge(settings, server, redis=aredis, engine=engine)
    await bridge.start()
    try:
        await asyncio.wait_for(server.paused.wait(), 20)
        await sync_point(bridge)
        feed(bridge.dispatcher, "scenario-answered", "BridgeEnter", 2)  # live call at restart
        server.resume_event.set()
        await asyncio.wait_for(server.finished.wait(), 20)
        await sync_point(bridge)
        await bridge.settle(timeout=90)
        since = {a.interface: a.state_since for a in bridge.state.agents.values()}
    finally:
        await bridge.stop()
        await server.close()
    cfg = board_config(settings)
    with Session(engine) as s:
        day = day_figures(s, cfg, now_utc())
        rows_before = len(s.exec(select(AgentStateChange)).all())
    assert (day["total"]["offered"], day["total"]["answered"]) == (1, 1)
    assert rows_before > 0

    second = await replay(settings, engine, aredis, "scenario-restart")  # the bridge restarts
    with Session(engine) as s:
        again = day_figures(s, cfg, now_utc())
        rows_after = len(s.exec(select(AgentStateChange)).all())
    assert again["total"] == day["total"]
    assert rows_after == rows_before
    for a in second.state.agents.values():
        assert a.state_since == since[a.interface]


async def test_agent_state_log_pause_with_reason(settings, engine, aredis, sredis):
    # at the captured pace (0.3 s between actions): the state log notes states per publish, so a
    # pause and unpause within one publish interval would be one change
    await replay(settings, engine, aredis, "actions-queue-members", speed=1.0)
    with Session(engine) as s:
        rows = s.exec(
            select(AgentStateChange).where(AgentStateChange.interface == "Local/8004@agents")
        ).all()
    states = [(r.state, r.reason) for r in rows]
    assert ("paused", "午休") in states
    assert states.index(("paused", "午休")) < len(states) - 1  # then unpaused again
    snap = load_snapshot(sredis, settings)
    a8001 = next(a for a in snap["agents"] if a["interface"] == "Local/8001@agents")
    assert a8001["state_since"] is not None
    live = live_figures(snap, board_config(settings), a8001["state_since"] + 5)
    row = next(a for a in live["agents"] if a["interface"] == "Local/8001@agents")
    assert row["in_state"] == 5


def test_paused_time_by_reason_from_the_log_hand_computed(settings, engine):
    t0 = now_utc().replace(microsecond=0) - timedelta(hours=1)
    ts = t0.replace(tzinfo=UTC).timestamp()
    a = "Local/8001@agents"
    store_state_changes(
        engine,
        "pbx1",
        [
            {"interface": a, "agent_name": "张敏", "state": "ready", "at": ts},
            {"interface": a, "state": "paused", "reason": "meal", "at": ts + 600},
            {"interface": a, "state": "ready", "at": ts + 600 + 1800},
            {"interface": a, "state": "paused", "reason": "break", "at": ts + 3000},
            # a restarted bridge writing the same state again: the clock carries on, no double
            {"interface": a, "state": "paused", "reason": "break", "at": ts + 3100},
            {"interface": a, "state": "logged-out", "at": ts + 3300},
        ],
    )
    cfg = board_config(settings)
    with Session(engine) as s:
        f = period_figures(s, cfg, t0, t0 + timedelta(hours=2), t0 + timedelta(hours=2))
    got = f["agents"][f"pbx1|{a}"]
    assert got["paused_by_reason"] == {"meal": 1800.0, "break": 300.0}
    assert got["paused"] == 2100.0 and got["seconds"]["ready"] == 600 + 600
    assert got["logged_in"] == 3300.0
    # a period starting mid-pause counts from its start (the row in force then)
    with Session(engine) as s:
        f2 = period_figures(s, cfg, t0 + timedelta(seconds=900), t0 + timedelta(hours=2),
                            t0 + timedelta(hours=2))  # fmt: skip
    assert f2["agents"][f"pbx1|{a}"]["paused_by_reason"]["meal"] == 1500.0


def test_live_figures_and_alerts_hand_computed(settings):
    st = LiveState("pbx1")
    now = 1_000_000.0
    st.member("dxe-general", "Local/8001@agents", "张敏", paused=True, reason="meal")
    st.member("dxe-general", "Local/8002@agents", "李强")
    st.member("dxe-general", "Local/8003@agents", "王芳", status="2")  # in use: on call
    st.leg("c1", "c1", "Local/12345@x;2", now - 100)
    st.queue_join("c1", "dxe-general", now - 90)
    st.leg("c2", "c2", "Local/12345@y;2", now - 10)
    st.queue_join("c2", "dxe-general", now - 5)
    st.note_agent_states(now - 1000)
    snap = st.snapshot(now)
    merged = {
        "servers": {"pbx1": {}},
        "calls": [],
        "queues": [{**q, "server": "pbx1"} for q in snap["queues"].values()],
        "agents": [{**a, "server": "pbx1"} for a in snap["agents"].values()],
    }
    cfg = board_config(settings)
    live = live_figures(merged, cfg, now)
    q = live["queues"]["dxe-general"]
    assert q["waiting"] == 2 and q["longest_wait"] == 90
    assert q["agents"]["paused"] == 1 and q["agents"]["ready"] == 1 and q["agents"]["on-call"] == 1
    assert q["agents"]["logged-in"] == 3 and q["paused_by_reason"] == {"meal": 1}
    day = {"queues": {"dxe-general": {"sl_answered": 0.5}}}
    kinds = {(x["kind"], x.get("queue") or x.get("agent")) for x in alerts(live, day, cfg, now)}
    assert ("wait", "dxe-general") in kinds  # 90 s > 60 s
    assert ("sl", "dxe-general") in kinds  # 50 % < 80 %
    assert ("paused", "pbx1|Local/8001@agents") in kinds  # 1000 s > 900 s
    full = board(merged, day, cfg, now)
    assert full["queues"]["dxe-general"]["live"]["waiting"] == 2


def test_a_restarted_bridge_keeps_the_state_clock_and_logs_no_duplicate():
    st = LiveState("pbx1")
    st.prior_states["Local/8001@agents"] = ("paused", "meal", 500.0)
    st.member("q", "Local/8001@agents", "张敏", paused=True, reason="meal")
    assert st.note_agent_states(900.0) == []
    assert st.agents["Local/8001@agents"].state_since == 500.0
    st.member("q", "Local/8001@agents", paused=False)
    (row,) = st.note_agent_states(950.0)
    assert row["state"] == "ready" and row["at"] == 950.0


@pytest.mark.parametrize("bad", ["", "PJSIP/80 01", "Local/x;2,evil", "notachannel"])
def test_spy_refuses_odd_channel_names(bad):
    from callcenter.commands import CommandRefused, supervisor_action

    with pytest.raises(CommandRefused):
        supervisor_action(
            object(), "spy", {"interface": bad, "phone": "PJSIP/9001", "mode": "listen"}
        )
    with pytest.raises(CommandRefused):
        supervisor_action(
            object(), "spy", {"interface": "PJSIP/8001", "phone": "PJSIP/9001", "mode": "x"}
        )
