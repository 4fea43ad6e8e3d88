"""§13–15 on real SQLite and PostgreSQL: the clocks on sub-orders and tickets, the incremental
scan, escalation (催办/督办/专办) with its de-duplication, quiet hours and acknowledgement, and
the evaluation follow-up (重办, its counter, 回访, reminder, 默认满意)."""

from __future__ import annotations

import shutil
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from _loop_helpers import make_ticket, seed_departments, suborders, ticket
from sqlalchemy import func, update
from sqlmodel import select

import ticketing.dispatch as d
from config.database import session_scope
from config.settings import DEFAULTS_DIR
from ticketing import escalation as esc
from ticketing import followup
from ticketing.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ticketing.evaluation import evaluate
from ticketing.models import (
    CallbackTask,
    Escalation,
    Evaluation,
    OutboxMessage,
    SubOrder,
    Ticket,
    TicketEvent,
)
from ticketing.sla import add_duration
from ticketing.sla_clocks import bind_settings
from ticketing.sla_scan import full_scan, scan_round

SH = ZoneInfo("Asia/Shanghai")
MIN = timedelta(minutes=1)


@pytest.fixture
def world(engine, settings):
    seed_departments(engine, settings)
    return engine, settings


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def _dispatched(engine, settings, codes=("SWJ",), **kw) -> tuple[int, list[int]]:
    tid = make_ticket(engine, settings, **kw)
    with session_scope(engine) as s:
        subs = d.dispatch(s, settings, s.get(Ticket, tid), list(codes), actor="disp")
        return tid, [so.id for so in subs]


def _scan(engine, settings, now):
    with session_scope(engine) as s:
        return scan_round(s, settings, now=now)


def _sub(engine, sid) -> SubOrder:
    with session_scope(engine, read_only=True) as s:
        return s.get(SubOrder, sid)


def _escalations(engine, tid, kind=None) -> list[Escalation]:
    with session_scope(engine, read_only=True) as s:
        q = select(Escalation).where(Escalation.ticket_id == tid)
        if kind:
            q = q.where(Escalation.kind == kind)
        return list(s.exec(q.order_by(Escalation.id)))


def _events(engine, tid, action) -> list[TicketEvent]:
    with session_scope(engine, read_only=True) as s:
        return list(
            s.exec(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == tid, TicketEvent.action == action)
                .order_by(TicketEvent.id)
            )
        )


def test_a_sub_order_walks_through_its_accept_and_finish_clocks(world):
    engine, settings = world
    tid, (sid,) = _dispatched(engine, settings, category="complaint", urgency="urgent")
    # the clocks start at the dispatch itself, not at the next scan round
    so = _sub(engine, sid)
    # complaint × urgent: accept within 2 hours (sla.yaml accept_policy)
    assert so.accept_due_at == so.dispatched_at + timedelta(hours=2)
    assert (so.warning, so.warning_step) == ("none", "accept")
    two_thirds = so.dispatched_at + timedelta(minutes=80)
    assert so.sla_next_at == two_thirds  # the index says exactly when to look again
    assert _scan(engine, settings, two_thirds - MIN).suborders == 0  # nothing due: nothing read
    _scan(engine, settings, two_thirds)
    so = _sub(engine, sid)
    assert so.warning == "blue"
    (remind,) = _escalations(engine, tid, "remind")
    assert (remind.level, remind.step, remind.department_code) == ("blue", "accept", "SWJ")
    _scan(engine, settings, so.accept_due_at + MIN)
    assert _sub(engine, sid).warning == "overdue"
    # the department accepts: the matter moves on, the finish clock starts from none
    with session_scope(engine) as s:
        d.accept(s, settings, sid, actor="h")
    so = _sub(engine, sid)
    assert (so.warning, so.warning_step) == ("none", "finish")
    assert so.sla_next_at is not None and so.sla_next_at > so.accepted_at
    with session_scope(engine) as s:
        d.reply(s, settings, sid, actor="h", text="已办理")
    so = _sub(engine, sid)
    assert so.sla_next_at is None  # replied: never read by the scan again
    t = ticket(engine, tid)
    assert t.status == "resolved" and t.sla_next_at is None


def test_levels_only_go_up_until_the_matter_moves_on(world):
    engine, settings = world
    tid, (sid,) = _dispatched(engine, settings, category="complaint", urgency="urgent")
    with session_scope(engine) as s:
        d.accept(s, settings, sid, actor="h")
    so = _sub(engine, sid)
    span = so.deadline_at - so.dispatched_at
    at = so.dispatched_at + span * 0.85
    _scan(engine, settings, at)
    assert _sub(engine, sid).warning == "yellow"
    with session_scope(engine) as s:  # a longer deadline written behind the lifecycle's back
        row = s.get(SubOrder, sid)
        row.deadline_at = row.deadline_at + timedelta(days=30)
        row.sla_next_at = at
        s.add(row)
    _scan(engine, settings, at + MIN)
    assert _sub(engine, sid).warning == "yellow"  # never down without a move
    raised = [e.detail["to"] for e in _events(engine, tid, "warning") if e.suborder_id == sid]
    assert raised == ["blue", "yellow"] or raised == ["yellow"]


def _with_city_leader(settings, tmp_path):
    """The shipped departments.yaml names no city leader (no placeholder phone gets an SMS):
    a copy of the configuration with one."""
    cfg_dir = tmp_path / "leader-conf"
    cfg_dir.mkdir(exist_ok=True)
    data = yaml.safe_load((DEFAULTS_DIR / "departments.yaml").read_text(encoding="utf-8"))
    data["city_leaders"] = [{"name": "分管副市长", "phone": "+8613907150100"}]
    (cfg_dir / "departments.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
    )
    for name in ("sla.yaml", "notices.yaml"):
        shutil.copy(DEFAULTS_DIR / name, cfg_dir / name)
    return settings.model_copy(update={"config_dir": cfg_dir})


def test_return_as_beyond_power_turns_the_ticket_red_and_raises_special(world, tmp_path):
    engine, base = world
    settings = _with_city_leader(base, tmp_path)
    tid, (sid,) = _dispatched(engine, settings)
    with session_scope(engine) as s:
        d.return_suborder(s, settings, sid, actor="h", reason="超出本部门职权")
    t = ticket(engine, tid)
    assert t.warning == "red"  # re-evaluated on the state change itself, no scan needed
    (special,) = _escalations(engine, tid, "special")
    assert special.status == "open" and special.coordinator == "营商环境建设办公室主任"
    assert special.notify_after is not None  # no bound settings here: the next round sends it
    res = _scan(engine, settings, special.notify_after)
    assert res.sms_released >= 1
    with session_scope(engine, read_only=True) as s:
        kinds = [
            m.kind for m in s.exec(select(OutboxMessage).where(OutboxMessage.ticket_id == tid))
        ]
    assert "esc_special" in kinds
    assert _escalations(engine, tid, "special")[0].notified_at is not None
    board = esc.escalations
    with session_scope(engine, read_only=True) as s:
        assert [e.id for e, _t in board(s, kind="special", status="open")] == [special.id]


def test_cross_department_matters_that_stall_go_red(world):
    engine, settings = world
    tid, _ = _dispatched(engine, settings, codes=("SWJ", "RSJ"))
    t = ticket(engine, tid)
    from ticketing.worktime import WorkCalendar

    stall = WorkCalendar(settings).add_working_hours(t.updated_at, 8)
    _scan(engine, settings, t.updated_at)
    _scan(engine, settings, stall - MIN)
    assert ticket(engine, tid).warning != "red"
    _scan(engine, settings, stall)
    assert ticket(engine, tid).warning == "red"
    assert len(_escalations(engine, tid, "special")) == 1


def test_two_concurrent_scans_raise_every_reminder_once(world):
    engine, settings = world
    tids = []
    for _ in range(12):
        tid, _subs = _dispatched(engine, settings, category="complaint", urgency="urgent")
        tids.append(tid)
    with session_scope(engine, read_only=True) as s:
        first = min(s.exec(select(SubOrder.dispatched_at)))
    at = first + timedelta(minutes=100)  # 5/6 of the 2-hour accept clock: blue for everyone
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run():
        try:
            barrier.wait()
            _scan(engine, settings, at)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    with session_scope(engine, read_only=True) as s:
        reminders = s.exec(
            select(func.count()).select_from(Escalation).where(Escalation.kind == "remind")
        ).one()
        warnings = s.exec(
            select(func.count())
            .select_from(TicketEvent)
            .where(TicketEvent.action == "warning", TicketEvent.suborder_id.is_not(None))
        ).one()
    assert reminders == 12 and warnings == 12
    _scan(engine, settings, at)  # and a third round later: nothing again
    assert len(_escalations(engine, tids[0], "remind")) == 1


def test_quiet_hours_hold_sms_but_not_red(world):
    engine, settings = world
    night = local(2026, 3, 2, 23, 0)
    assert esc.quiet_until(settings, night) == local(2026, 3, 3, 8, 0)
    assert esc.quiet_until(settings, local(2026, 3, 3, 7, 59)) == local(2026, 3, 3, 8, 0)
    assert esc.quiet_until(settings, local(2026, 3, 3, 8, 0)) is None
    tid, (sid,) = _dispatched(engine, settings, category="complaint", urgency="urgent")
    with session_scope(engine) as s:
        row = s.get(SubOrder, sid)  # dispatched an hour and a half before 23:00 local
        row.dispatched_at = night - timedelta(minutes=90)
        row.accept_due_at = None
        row.sla_next_at = night
        s.add(row)
    _scan(engine, settings, night)
    (remind,) = _escalations(engine, tid, "remind")
    assert remind.notify_after == local(2026, 3, 3, 8, 0) and remind.notified_at is None
    _scan(engine, settings, night + timedelta(minutes=31))  # overdue: special on the ticket? no:
    assert _escalations(engine, tid, "remind")[0].notified_at is None  # still held
    _scan(engine, settings, local(2026, 3, 3, 8, 0))
    assert _escalations(engine, tid, "remind")[0].notified_at is not None


def test_manual_supervision_needs_a_note_and_the_heads_acknowledgement(world):
    engine, settings = world
    tid, _ = _dispatched(engine, settings, codes=("SWJ", "RSJ"))
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        esc.supervise(s, settings, s.get(Ticket, tid), actor="sup", note=" ", due_at=None)
    with session_scope(engine) as s:
        bind_settings(s, settings)
        rows = esc.supervise(
            s,
            settings,
            s.get(Ticket, tid),
            actor="sup",
            note="企业反映强烈，请加快办理",
            due_at=datetime.now() + timedelta(days=1),
        )
        ids = {r.department_code: r.id for r in rows}
    assert set(ids) == {"SWJ", "RSJ"}
    with session_scope(engine) as s, pytest.raises(NotFound):  # another department's: 404
        esc.acknowledge(s, ids["SWJ"], actor="rsj1", department="RSJ", head=True)
    with session_scope(engine) as s, pytest.raises(PermissionDenied):  # a handler, not the head
        esc.acknowledge(s, ids["SWJ"], actor="swj1", department="SWJ", head=False)
    with session_scope(engine) as s:
        esc.acknowledge(s, ids["SWJ"], actor="swj-head", department="SWJ", head=True, note="已部署")
    with session_scope(engine) as s, pytest.raises(Conflict):
        esc.acknowledge(s, ids["SWJ"], actor="swj-head", department="SWJ", head=True)
    acked = {e.department_code: e for e in _escalations(engine, tid, "supervise")}
    assert acked["SWJ"].status == "acknowledged" and acked["SWJ"].acknowledged_by == "swj-head"
    assert acked["RSJ"].status == "open"
    assert [e.detail["department"] for e in _events(engine, tid, "supervision_acknowledged")] == [
        "SWJ"
    ]
    with session_scope(engine, read_only=True) as s:
        mine = esc.escalations(s, kind="supervise", status="open", department="RSJ")
    assert [e.id for e, _ in mine] == [ids["RSJ"]]


def _resolve_round(engine, settings, tid):
    for so in suborders(engine, tid):
        if so.round == ticket(engine, tid).round and so.status == "dispatched":
            with session_scope(engine) as s:
                d.accept(s, settings, so.id, actor="h")
                d.reply(s, settings, so.id, actor="h", text="已办理")


def _rate(engine, settings, tid, word, **kw):
    with session_scope(engine) as s:
        return evaluate(
            s,
            settings,
            s.get(Ticket, tid),
            process=word,
            timeliness=word,
            result=word,
            actor=kw.pop("actor", "public"),
            **kw,
        )


def test_unsatisfied_redo_counts_rounds_and_the_third_raises_supervision(world):
    engine, settings = world
    tid, _ = _dispatched(engine, settings, codes=("SWJ",))
    with session_scope(engine) as s:
        t = s.get(Ticket, tid)
        t.submitter_phone = "+8613800138000"
        s.add(t)
    for n in (1, 2, 3):
        _resolve_round(engine, settings, tid)
        assert ticket(engine, tid).status == "resolved"
        _rate(engine, settings, tid, "不满意", comment=f"第{n}次仍未解决")
        t = ticket(engine, tid)
        assert (t.status, t.reopen_count, t.round) == ("dispatched", n, n + 1)
        new = [so for so in suborders(engine, tid) if so.round == n + 1]
        assert [so.department_code for so in new] == ["SWJ"]
        assert f"第 {n} 轮" in new[0].instructions and new[0].deadline_at == t.deadline_at
        supervised = [e for e in _escalations(engine, tid, "supervise") if e.trigger == "redo"]
        assert len(supervised) == (1 if n == 3 else 0)
    assert [e.detail["redo_round"] for e in _events(engine, tid, "redo")] == [1, 2, 3]
    with session_scope(engine, read_only=True) as s:
        tasks = list(
            s.exec(
                select(CallbackTask).where(
                    CallbackTask.ticket_id == tid, CallbackTask.reason == "revisit"
                )
            )
        )
    assert len(tasks) == 3 and all(t.note == "不满意回访" for t in tasks)
    with session_scope(engine) as s:
        done = followup.record_revisit(
            s, tasks[0].id, actor="agent1", outcome="unsatisfied", note="仍不满意"
        )
        assert done.status == "done"
    with session_scope(engine) as s, pytest.raises(Conflict):
        followup.record_revisit(s, tasks[0].id, actor="agent1", outcome="unsatisfied")
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        followup.record_revisit(s, tasks[1].id, actor="agent1", outcome="好")
    (ev,) = _events(engine, tid, "revisit_done")
    assert ev.detail["outcome"] == "unsatisfied"


def test_a_sample_of_satisfied_ratings_gets_a_revisit(world):
    engine, settings = world
    hits = 0
    for _ in range(12):
        tid, _ = _dispatched(engine, settings)
        with session_scope(engine) as s:
            t = s.get(Ticket, tid)
            t.submitter_phone = "+8613800138000"
            s.add(t)
        _resolve_round(engine, settings, tid)
        _rate(engine, settings, tid, "满意")
        expected = followup._sampled(ticket(engine, tid), 1, 0.1)
        with session_scope(engine, read_only=True) as s:
            got = s.exec(select(CallbackTask.id).where(CallbackTask.ticket_id == tid)).first()
        assert (got is not None) == expected
        hits += expected
    assert followup._sampled(ticket(engine, tid), 1, 1.0) and not followup._sampled(
        ticket(engine, tid), 1, 0.0
    )


def _custom(settings, tmp_path, **followup_cfg):
    cfg_dir = tmp_path / "conf"
    cfg_dir.mkdir(exist_ok=True)
    data = yaml.safe_load((DEFAULTS_DIR / "sla.yaml").read_text(encoding="utf-8"))
    data["followup"].update(followup_cfg)
    (cfg_dir / "sla.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    for name in ("departments.yaml", "notices.yaml"):
        shutil.copy(DEFAULTS_DIR / name, cfg_dir / name)
    return settings.model_copy(update={"config_dir": cfg_dir})


@pytest.mark.parametrize("default_satisfied", [False, True])
def test_a_reminder_once_then_default_satisfied_only_when_configured(
    world, tmp_path, default_satisfied
):
    engine, base = world
    settings = _custom(base, tmp_path, default_satisfied=default_satisfied)
    tid, _ = _dispatched(engine, settings)
    with session_scope(engine) as s:
        t = s.get(Ticket, tid)
        t.submitter_phone = "+8613800138000"
        s.add(t)
    _resolve_round(engine, settings, tid)
    resolved_at = ticket(engine, tid).resolved_at
    with session_scope(engine) as s:
        assert followup.followup_round(s, settings, resolved_at + timedelta(days=1)) == {
            "reminded": 0,
            "defaulted": 0,
        }
    for _ in range(2):
        with session_scope(engine) as s:
            followup.followup_round(s, settings, resolved_at + timedelta(days=3))
    kinds = [e.detail["kind"] for e in _events(engine, tid, "notice_created")]
    told = [e.detail["kind"] for e in _events(engine, tid, "submitter_told")]
    assert kinds.count("eval_reminder") == 1 and told.count("resolved") == 1  # one rating request
    with session_scope(engine) as s:
        out = followup.followup_round(s, settings, resolved_at + timedelta(days=8))
    t = ticket(engine, tid)
    if default_satisfied:
        assert out["defaulted"] == 1 and t.status == "closed"
        with session_scope(engine, read_only=True) as s:
            (ev,) = s.exec(select(Evaluation).where(Evaluation.ticket_id == tid))
        assert (ev.source, ev.channel, ev.overall) == ("default", "timeout", "satisfied")
    else:
        assert out["defaulted"] == 0 and t.status == "resolved"


def test_full_scan_reevaluates_everything_and_national_day_deadlines_hold(world):
    engine, settings = world
    start = local(2025, 9, 30, 10, 0)
    due = add_duration(settings, start, 3, "working_days")
    tid = make_ticket(engine, settings, deadline=due)
    with session_scope(engine) as s:
        t = s.get(Ticket, tid)
        t.created_at = t.updated_at = start
        s.add(t)
    with session_scope(engine) as s:
        res = full_scan(s, settings, now=local(2025, 10, 7, 12, 0))
    assert res.tickets >= 1
    # the holidays made the deadline 11 Oct (the 调休 Saturday); 14 working hours passed on
    # 30 Sep and none during 1-7 Oct, so a general matter has not "stalled" (16 h) either
    assert due == local(2025, 10, 11, 18, 0)
    assert ticket(engine, tid).warning == "none"
    with session_scope(engine) as s:
        full_scan(s, settings, now=start + (due - start) * 2 / 3 + MIN)
    assert ticket(engine, tid).warning == "blue"
    with session_scope(engine) as s:
        full_scan(s, settings, now=due + MIN)
    assert ticket(engine, tid).warning == "overdue"


# ---------------------------------------------------------------- clocks at dispatch, SQL = Python


def test_the_clocks_start_at_the_dispatch(world):
    engine, settings = world
    tid, (sid,) = _dispatched(engine, settings, category="complaint", urgency="urgent")
    so = _sub(engine, sid)  # no scan round has run
    assert (so.warning, so.warning_step, so.sla_bounds_step) == ("none", "accept", "accept")
    assert so.accept_due_at == so.dispatched_at + timedelta(hours=2)
    assert so.sla_overdue_at == so.accept_due_at
    assert so.sla_blue_at == so.dispatched_at + timedelta(minutes=80)  # 2/3 of two hours
    assert so.sla_next_at == so.sla_blue_at
    t = ticket(engine, tid)
    assert t.sla_bounds_step == "ticket" and t.sla_overdue_at == t.deadline_at
    # accepting starts the finish clock at once, on the sub-order's own deadline
    with session_scope(engine) as s:
        d.accept(s, settings, sid, actor="h")
    so = _sub(engine, sid)
    assert (so.warning_step, so.sla_bounds_step) == ("finish", "finish")
    assert so.sla_overdue_at == so.deadline_at and so.sla_next_at is not None


def test_the_set_based_full_scan_agrees_with_the_python_rule(world):
    """Random sub-orders (urgency, category, one or two departments, accepted or not) walked
    through random instants over three weeks: after each full scan (SQL on the stored boundaries)
    every sub-order has the level the pure rule (sla_levels.evaluate, working hours from the
    calendar) gives for its clock, never below the level it had."""
    import random

    from ticketing.sla_clocks import accept_due, rules, suborder_step
    from ticketing.sla_levels import SEVERITY, Clock
    from ticketing.sla_levels import evaluate as rule
    from ticketing.worktime import WorkCalendar

    engine, settings = world
    rnd = random.Random(11)
    sids: list[int] = []
    for _ in range(24):
        _tid, subs = _dispatched(
            engine,
            settings,
            codes=rnd.choice([("SWJ",), ("SWJ", "RSJ")]),
            category=rnd.choice(["enterprise", "government", "complaint"]),
            urgency=rnd.choice(["general", "urgent", "critical"]),
        )
        for sid in subs:
            if rnd.random() < 0.5:
                with session_scope(engine) as s:
                    d.accept(s, settings, sid, actor="h")
        sids.extend(subs)
    cal = WorkCalendar(settings)
    # instants a minute either side of some clocks' own boundaries (each level in turn), and
    # some anywhere in three weeks
    start = _sub(engine, sids[0]).dispatched_at
    edges = [
        at + timedelta(minutes=rnd.choice((-1, 0, 1)))
        for sid in rnd.sample(sids, 10)
        for at in (_sub(engine, sid).sla_yellow_at, _sub(engine, sid).sla_red_at)
        if at is not None
    ]
    instants = sorted(
        edges + [start + timedelta(minutes=rnd.randint(1, 21 * 24 * 60)) for _ in range(6)]
    )
    seen: set[str] = set()
    for now in instants:
        with session_scope(engine, read_only=True) as s:
            before = {
                so.id: (so, s.get(Ticket, so.ticket_id))
                for so in s.exec(select(SubOrder).where(SubOrder.id.in_(sids)))
            }
        with session_scope(engine) as s:
            # nothing due for the incremental round: only the set-based pass can raise them
            s.exec(update(SubOrder).where(SubOrder.id.in_(sids)).values(sla_next_at=None))
        with session_scope(engine) as s:
            full_scan(s, settings, now=now)
        for sid in sids:
            so, t = before[sid]
            step = suborder_step(so.status)
            due = (
                so.accept_due_at
                or accept_due(settings, t.category, t.urgency, so.dispatched_at, so.deadline_at)
                if step == "accept"
                else so.deadline_at
            )
            clock = Clock(
                urgency=t.urgency,
                step=step,
                start=so.dispatched_at,
                due=due,
                moved_at=so.dispatched_at if step == "accept" else so.accepted_at,
                reached=so.warning if so.warning_step == step else "none",
            )
            want = rule(rules(settings), clock, now, cal.add_working_hours).level
            got = _sub(engine, sid)
            assert got.warning == want, (sid, t.urgency, step, now, got.warning, want)
            assert SEVERITY[got.warning] >= SEVERITY[so.warning]
            seen.add(got.warning)
    assert len(seen) >= 4, seen  # the walk crossed most levels, not only "none"


def test_a_rebound_full_scan_recomputes_the_stored_instants(world):
    """After a change of the rules or the calendar the stored instants are stale: full_scan with
    rebound=True computes them again (a plain full scan trusts them)."""
    engine, settings = world
    _tid, (sid,) = _dispatched(engine, settings, category="complaint", urgency="urgent")
    so = _sub(engine, sid)
    right = so.sla_blue_at
    soon = so.dispatched_at + MIN
    with session_scope(engine) as s:  # as if the rules had said "blue from the start"
        row = s.get(SubOrder, sid)
        row.sla_blue_at = row.dispatched_at
        s.add(row)
    with session_scope(engine) as s:
        full_scan(s, settings, now=soon, rebound=True)
    so = _sub(engine, sid)
    assert (so.warning, so.sla_blue_at, so.sla_bounds_step) == ("none", right, "accept")
    with session_scope(engine) as s:
        row = s.get(SubOrder, sid)
        row.sla_blue_at = row.dispatched_at
        s.add(row)
    with session_scope(engine) as s:
        full_scan(s, settings, now=soon)
    assert _sub(engine, sid).warning == "blue"  # the stored instants are what it compares


def test_a_move_reads_the_sessions_own_pending_sub_order_changes(world):
    """The ticket's clock reads its round's sub-orders without flushing the move first: what the
    session holds (a sibling's unflushed level, a sub-order not yet inserted) counts as if
    flushed, and the ticket row is written once per move."""
    from sqlalchemy import event

    from ticketing.sla_clocks import _round_subs, touch

    engine, settings = world
    tid, (a, b) = _dispatched(engine, settings, codes=("SWJ", "SCJG"))
    with session_scope(engine) as s:
        t = s.get(Ticket, tid)
        sib = s.get(SubOrder, b)
        sib.warning = "red"  # pending, not flushed
        s.add(sib)
        extra = SubOrder(ticket_id=tid, round=t.round, department_code="JTJ", status="dispatched")
        s.add(extra)  # pending insert
        rows = {(r.department_code, r.warning) for r in _round_subs(s, tid, t.round)}
        assert ("SCJG", "red") in rows and ("JTJ", extra.warning) in rows
        assert sib in s.dirty and extra in s.new  # nothing was flushed by the read
        s.expunge(extra)
        ticket_updates: list[str] = []

        def count(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("UPDATE TICKET"):
                ticket_updates.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            touch(s, t, s.get(SubOrder, a))
            s.flush()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert t.warning == "red"  # the sibling's pending level is the ticket's floor
        assert len(ticket_updates) == 1
