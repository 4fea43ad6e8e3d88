"""The state machines: every illegal move is a Conflict naming both states, and writes nothing."""

from __future__ import annotations

import threading

import pytest
from _loop_helpers import (
    actions,
    events,
    make_ticket,
    seed_departments,
    snapshot,
    suborders,
    ticket,
)

import ticketing.dispatch as d
from config.database import session_scope
from ticketing.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ticketing.lifecycle import (
    SUBORDER_ACTIONS,
    SUBORDER_LABELS,
    SUBORDER_TRANSITIONS,
    TICKET_LABELS,
    TICKET_TRANSITIONS,
    check_suborder_action,
    check_ticket_transition,
)
from ticketing.models import SubOrder, SubOrderStatus, Ticket, TicketStatus


@pytest.fixture
def world(engine, settings):
    seed_departments(engine, settings)
    return engine, settings


def _dispatch(engine, settings, codes):
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s:
        subs = d.dispatch(s, settings, s.get(Ticket, tid), codes, actor="disp")
    return tid, [so.id for so in subs]


# ------------------------------------------------------------------ the tables themselves

ILLEGAL_TICKET = [
    (a, b) for a in TicketStatus for b in TicketStatus if b not in TICKET_TRANSITIONS[a]
]
ILLEGAL_SUB = [
    (action, st)
    for action, (allowed, _to) in SUBORDER_ACTIONS.items()
    for st in SubOrderStatus
    if st not in allowed
]


def test_tables_cover_every_state():
    assert set(TICKET_TRANSITIONS) == set(TicketStatus)
    assert set(SUBORDER_TRANSITIONS) == set(SubOrderStatus)
    # only the submitter's own rating over a staff-recorded one reopens a closed ticket
    assert TICKET_TRANSITIONS[TicketStatus.closed] == frozenset({TicketStatus.reopened})
    assert SUBORDER_TRANSITIONS[SubOrderStatus.replied] == frozenset()
    assert SUBORDER_TRANSITIONS[SubOrderStatus.returned] == frozenset()


@pytest.mark.parametrize(("current", "target"), ILLEGAL_TICKET)
def test_every_illegal_ticket_transition_is_a_conflict(current, target):
    t = Ticket(number="DXE-1", channel="web", title="t", content="c", category="enterprise")
    t.status = current
    with pytest.raises(Conflict) as e:
        check_ticket_transition(t, target)
    msg = e.value.message
    assert f"“{TICKET_LABELS[current]}”" in msg and f"“{TICKET_LABELS[target]}”" in msg
    assert f"({current})" not in msg
    assert (e.value.details["current"], e.value.details["target"]) == (current, target)
    assert e.value.details == {
        "entity": "ticket",
        "current": current,
        "target": target,
    }


@pytest.mark.parametrize(("action", "current"), ILLEGAL_SUB)
def test_every_illegal_suborder_action_is_a_conflict(action, current):
    so = SubOrder(id=7, ticket_id=1, department_code="SWJ", status=current)
    target = SUBORDER_ACTIONS[action][1]
    with pytest.raises(Conflict) as e:
        check_suborder_action(so, action)
    # the message names the states as users know them; the codes are in the details
    msg = e.value.message
    assert f"“{SUBORDER_LABELS[current]}”" in msg and f"“{SUBORDER_LABELS[target]}”" in msg
    assert f"({current})" not in msg
    assert (e.value.details["current"], e.value.details["target"]) == (current, target)
    assert so.status == current


def test_suborder_state_graph():
    assert {
        "dispatched": {"accepted", "returned"},
        "accepted": {"replied", "returned", "extension_requested"},
        "extension_requested": {"accepted"},
        "replied": set(),
        "returned": set(),
        "released": set(),
    } == {k: v - {"released"} for k, v in SUBORDER_TRANSITIONS.items()}
    # 解除协办: any sub-order not yet done can be released (only 协办 ones, ticketing.dispatch)
    assert {k for k, v in SUBORDER_TRANSITIONS.items() if "released" in v} == {
        "dispatched",
        "accepted",
        "extension_requested",
    }


# ------------------------------------------------------------------ through the real actions


def test_illegal_suborder_actions_write_nothing(world):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SWJ"])

    def refused(fn, **kw):
        before = snapshot(engine, tid)
        with pytest.raises(Conflict), session_scope(engine) as s:
            fn(s, settings, sid, actor="h", **kw)
        assert snapshot(engine, tid) == before

    # from dispatched
    refused(d.reply, text="办完了")
    refused(d.request_extension, reason="x", amount=1, unit="hours")
    refused(d.decide_extension, approve=True)
    with session_scope(engine) as s:
        d.accept(s, settings, sid, actor="h")
    # from accepted
    refused(d.accept)
    refused(d.decide_extension, approve=False)
    with session_scope(engine) as s:
        d.request_extension(s, settings, sid, actor="h", reason="x", amount=2, unit="hours")
    # from extension_requested
    refused(d.accept)
    refused(d.reply, text="办完了")
    refused(d.return_suborder, reason="不归我们管")
    refused(d.request_extension, reason="x", amount=1, unit="hours")
    with session_scope(engine) as s:
        d.decide_extension(s, settings, sid, actor="sup", approve=True)
        d.reply(s, settings, sid, actor="h", text="已处理")
    # from replied (terminal)
    for fn, kw in [
        (d.accept, {}),
        (d.reply, {"text": "again"}),
        (d.return_suborder, {"reason": "x"}),
        (d.request_extension, {"reason": "x", "amount": 1, "unit": "hours"}),
        (d.decide_extension, {"approve": True}),
    ]:
        refused(fn, **kw)
    assert ticket(engine, tid).status == "resolved"


def test_returned_suborder_is_terminal(world):
    engine, settings = world
    tid, (a, _b) = _dispatch(engine, settings, ["SWJ", "RSJ"])
    with session_scope(engine) as s:
        d.return_suborder(s, settings, a, actor="h", reason="非本部门职责")
    before = snapshot(engine, tid)
    for fn, kw in [(d.accept, {}), (d.reply, {"text": "x"}), (d.return_suborder, {"reason": "y"})]:
        with pytest.raises(Conflict, match="已退回"), session_scope(engine) as s:
            fn(s, settings, a, actor="h", **kw)
    assert snapshot(engine, tid) == before


def test_unknown_suborder_is_not_found(world):
    engine, settings = world
    with pytest.raises(NotFound), session_scope(engine) as s:
        d.accept(s, settings, 999_999, actor="h")


def test_handler_cannot_act_on_another_departments_suborder(world):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    before = snapshot(engine, tid)
    for fn, kw in [
        (d.accept, {}),
        (d.reply, {"text": "x"}),
        (d.return_suborder, {"reason": "x"}),
        (d.request_extension, {"reason": "x", "amount": 1, "unit": "hours"}),
        (d.decide_extension, {"approve": True}),
    ]:
        with pytest.raises(PermissionDenied), session_scope(engine) as s:
            fn(s, settings, sid, actor="swj-handler", department="SWJ", **kw)
    assert snapshot(engine, tid) == before
    with session_scope(engine) as s:  # its own department may
        d.accept(s, settings, sid, actor="scjg-handler", department="SCJG")
    assert suborders(engine, tid)[0].status == "accepted"


def test_reply_and_return_need_text(world):
    engine, settings = world
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    with session_scope(engine) as s:
        d.accept(s, settings, sid, actor="h")
    before = snapshot(engine, tid)
    with pytest.raises(InvalidInput, match="回复内容"), session_scope(engine) as s:
        d.reply(s, settings, sid, actor="h", text="   ")
    with pytest.raises(InvalidInput, match="退回原因"), session_scope(engine) as s:
        d.return_suborder(s, settings, sid, actor="h", reason="")
    with pytest.raises(InvalidInput, match="5000"), session_scope(engine) as s:
        d.reply(s, settings, sid, actor="h", text="字" * 5001)
    assert snapshot(engine, tid) == before


# ------------------------------------------------------------------ parallel dispatch + status


def test_parallel_three_departments_resolve_only_after_all_reply(world):
    engine, settings = world
    tid, sids = _dispatch(engine, settings, ["SCJG", "SWJ", "RSJ"])
    for sid, dept in zip(sids, ["SCJG", "SWJ", "RSJ"], strict=True):
        with session_scope(engine) as s:
            d.accept(s, settings, sid, actor=f"h-{dept}", department=dept)
    for i, (sid, dept) in enumerate(zip(sids, ["SCJG", "SWJ", "RSJ"], strict=True)):
        assert ticket(engine, tid).status == "dispatched"
        with session_scope(engine) as s:
            d.reply(s, settings, sid, actor=f"h-{dept}", text=f"{dept} 已办理", department=dept)
        assert ticket(engine, tid).status == ("resolved" if i == 2 else "dispatched")
    t = ticket(engine, tid)
    assert t.resolved_at is not None
    (ev,) = events(engine, tid, "resolved")
    assert ev.detail["departments"] == ["SCJG", "SWJ", "RSJ"]
    assert [so.reply for so in suborders(engine, tid)] == [
        "SCJG 已办理",
        "SWJ 已办理",
        "RSJ 已办理",
    ]


def test_return_midway_goes_back_to_dispatcher_and_redispatch_completes(world):
    engine, settings = world
    tid, (a, b) = _dispatch(engine, settings, ["SCJG", "ZJJ"])
    with session_scope(engine) as s:
        d.accept(s, settings, a, actor="h")
        d.return_suborder(
            s, settings, b, actor="h-zjj", reason="属于自然资源部门职责", department="ZJJ"
        )
    t = ticket(engine, tid)
    assert t.status == "dispatched"  # SCJG still working
    ev = events(engine, tid, "suborder_returned")[0]
    assert ev.detail["reason"] == "属于自然资源部门职责" and ev.detail["to_dispatcher"] is True
    with session_scope(engine) as s:  # the dispatcher re-routes the returned part
        (c,) = d.dispatch(s, settings, s.get(Ticket, tid), ["ZRZY"], actor="disp")
    with session_scope(engine) as s:
        d.reply(s, settings, a, actor="h", text="执照问题已解决")
    assert ticket(engine, tid).status == "dispatched"  # ZRZY still open
    with session_scope(engine) as s:
        d.accept(s, settings, c.id, actor="h2")
        d.reply(s, settings, c.id, actor="h2", text="用地手续已办")
    assert ticket(engine, tid).status == "resolved"


def test_all_returned_puts_ticket_back_to_pending_dispatch(world):
    engine, settings = world
    tid, (a, b) = _dispatch(engine, settings, ["SCJG", "SWJ"])
    with session_scope(engine) as s:
        d.return_suborder(s, settings, a, actor="h1", reason="非本部门")
    assert ticket(engine, tid).status == "dispatched"
    with session_scope(engine) as s:
        d.accept(s, settings, b, actor="h2")
        d.return_suborder(s, settings, b, actor="h2", reason="非本部门")
    t = ticket(engine, tid)
    assert t.status == "pending_dispatch" and t.dispatch_mode == "manual"
    assert "returned_to_dispatcher" in actions(engine, tid)
    with session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["SCJG"], actor="disp")
    assert ticket(engine, tid).status == "dispatched"


def test_concurrent_replies_from_parallel_departments_resolve_exactly_once(world):
    """Both last replies land at once: the row lock makes one of them see the other."""
    engine, settings = world
    tid, sids = _dispatch(engine, settings, ["SCJG", "SWJ", "RSJ", "ZJJ"])
    with session_scope(engine) as s:
        for sid in sids:
            d.accept(s, settings, sid, actor="h")
    barrier = threading.Barrier(len(sids))
    errors: list[BaseException] = []

    def go(sid):
        try:
            barrier.wait()
            with session_scope(engine) as s:
                d.reply(s, settings, sid, actor="h", text="办结")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(sid,)) for sid in sids]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert ticket(engine, tid).status == "resolved"
    assert len(events(engine, tid, "resolved")) == 1


def test_lock_suborder_locks_the_ticket_first(world):
    """PostgreSQL: lock_suborder's one statement takes the ticket's row lock before it waits for
    the sub-order's (the order every writer follows, so no lock-order deadlock): while another
    transaction holds the sub-order, the ticket is already locked by the waiting one."""
    import sqlalchemy as sa

    from ticketing.lifecycle import lock_suborder

    engine, settings = world
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    tid, (sid,) = _dispatch(engine, settings, ["SCJG"])
    with engine.connect() as holder:
        holder.execute(sa.text("SELECT id FROM suborder WHERE id = :i FOR UPDATE"), {"i": sid})
        done = threading.Event()

        def waiter() -> None:
            with session_scope(engine) as s:
                lock_suborder(s, sid)
            done.set()

        th = threading.Thread(target=waiter)
        th.start()
        try:
            with engine.connect() as probe:
                locked = False
                for _ in range(100):  # until the waiter's statement holds the ticket
                    try:
                        probe.execute(
                            sa.text("SELECT id FROM ticket WHERE id = :i FOR UPDATE NOWAIT"),
                            {"i": tid},
                        )
                        probe.rollback()
                    except sa.exc.OperationalError:
                        probe.rollback()
                        locked = True
                        break
                    done.wait(0.05)
                assert locked and not done.is_set()
        finally:
            holder.rollback()
            th.join(10)
    assert done.is_set()
