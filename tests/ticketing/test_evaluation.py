"""Evaluation (§15) and the whole closed loop 受理-派单-办理-评价 on SQLite and PostgreSQL."""

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
from sqlmodel import select

import ticketing.dispatch as d
from config.database import session_scope
from ticketing.errors import Conflict, InvalidInput
from ticketing.evaluation import evaluate, overall_rating, parse_rating
from ticketing.intake import submit
from ticketing.models import Evaluation, Rating, Ticket
from ticketing.schemas import TicketIn


@pytest.fixture
def world(engine, settings):
    seed_departments(engine, settings)
    return engine, settings


def _resolved(engine, settings, codes=("SWJ",)) -> tuple[int, list[int]]:
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s:
        subs = d.dispatch(s, settings, s.get(Ticket, tid), list(codes), actor="disp")
        for so in subs:
            d.accept(s, settings, so.id, actor="h")
            d.reply(s, settings, so.id, actor="h", text="已办理")
    assert ticket(engine, tid).status == "resolved"
    return tid, [so.id for so in subs]


def _evaluate(engine, settings, tid, p, t, r, **kw) -> Evaluation:
    with session_scope(engine) as s:
        return evaluate(
            s,
            settings,
            s.get(Ticket, tid),
            process=p,
            timeliness=t,
            result=r,
            actor=kw.pop("actor", "submitter"),
            **kw,
        )


def test_ratings_parse_chinese_words_and_overall_is_the_worst():
    assert parse_rating("满意", "process") is Rating.satisfied
    assert parse_rating("基本满意", "process") is Rating.basic
    assert parse_rating("unsatisfied", "result") is Rating.unsatisfied
    assert parse_rating(Rating.basic, "result") is Rating.basic
    for bad in ("很好", "", None, "Satisfied"):
        with pytest.raises(InvalidInput, match="满意"):
            parse_rating(bad, "timeliness")
    assert overall_rating(Rating.satisfied, Rating.basic, Rating.satisfied) is Rating.basic
    assert overall_rating(Rating.basic, Rating.unsatisfied, Rating.satisfied) is Rating.unsatisfied
    assert overall_rating(Rating.satisfied, Rating.satisfied, Rating.satisfied) is Rating.satisfied


def test_satisfied_closes_the_ticket(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings)
    ev = _evaluate(engine, settings, tid, "满意", "基本满意", "满意", comment="办得快")
    assert ev.overall == "basically_satisfied" and ev.round == 1 and ev.submitted_by == "submitter"
    t = ticket(engine, tid)
    assert t.status == "closed" and t.closed_at is not None and t.round == 1
    assert actions(engine, tid)[-2:] == ["evaluated", "closed"]
    assert events(engine, tid, "evaluated")[0].detail["comment"] == "办得快"


def test_second_evaluation_in_the_same_round_is_a_conflict(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings)
    _evaluate(engine, settings, tid, "满意", "满意", "满意")
    before = snapshot(engine, tid)
    with pytest.raises(Conflict, match="已评价"):
        _evaluate(engine, settings, tid, "不满意", "不满意", "不满意")
    assert snapshot(engine, tid) == before


def test_only_a_resolved_ticket_can_be_evaluated(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    before = snapshot(engine, tid)
    with pytest.raises(Conflict, match="“待派单”"):
        _evaluate(engine, settings, tid, "满意", "满意", "满意")
    with session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["SWJ"], actor="disp")
    with pytest.raises(Conflict, match="“办理中”"):
        _evaluate(engine, settings, tid, "满意", "满意", "满意")
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(Evaluation)).all() == []
    assert before["evaluations"] == 0


def test_bad_evaluation_input_writes_nothing(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings)
    before = snapshot(engine, tid)
    with pytest.raises(InvalidInput, match="办理过程"):
        _evaluate(engine, settings, tid, "还行", "满意", "满意")
    with pytest.raises(InvalidInput, match="2000"):
        _evaluate(engine, settings, tid, "满意", "满意", "满意", comment="长" * 2001)
    with pytest.raises(InvalidInput, match="责任人"):
        _evaluate(engine, settings, tid, "不满意", "满意", "满意", responsible_person="张" * 101)
    assert snapshot(engine, tid) == before


def test_unsatisfied_reopens_with_new_round_and_redispatch(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings, codes=("SWJ", "RSJ"))
    old = ticket(engine, tid)
    ev = _evaluate(engine, settings, tid, "满意", "基本满意", "不满意", comment="问题没解决")
    assert ev.overall == "unsatisfied" and ev.round == 1
    # nobody named: the heads of the departments that replied are held responsible
    assert ev.responsible_person == "税务局局长、人力资源和社会保障局局长"
    t = ticket(engine, tid)
    # 重办 (#11): straight back to the departments that replied, in a new round with a new clock
    assert (t.status, t.round, t.reopen_count, t.dispatch_mode) == ("dispatched", 2, 1, "auto")
    assert t.responsible_person == ev.responsible_person and t.resolved_at is None
    assert t.deadline_at >= old.deadline_at  # a fresh committed deadline for the follow-up
    (reopen,) = events(engine, tid, "reopened")
    assert reopen.detail["previous_round"] == 1 and reopen.detail["round"] == 2
    (redo,) = events(engine, tid, "redo")
    assert redo.detail["redo_round"] == 1 and redo.detail["departments"] == ["SWJ", "RSJ"]
    again = [so for so in suborders(engine, tid) if so.round == 2]
    assert [so.department_code for so in again] == ["SWJ", "RSJ"]
    assert all(so.deadline_at == t.deadline_at for so in again)
    assert all("责任人：税务局局长" in (so.instructions or "") for so in again)
    with session_scope(engine) as s:
        for so in again:
            d.accept(s, settings, so.id, actor="h")
            d.reply(s, settings, so.id, actor="h", text="补充办理完毕")
    # round 1's replies don't count again; round 2's single reply resolves it
    assert ticket(engine, tid).status == "resolved"
    ev2 = _evaluate(engine, settings, tid, "满意", "满意", "满意")
    assert ev2.round == 2
    assert ticket(engine, tid).status == "closed"
    with session_scope(engine, read_only=True) as s:
        assert [e.round for e in s.exec(select(Evaluation).order_by(Evaluation.id))] == [1, 2]


def test_named_responsible_person_is_kept(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings)
    ev = _evaluate(engine, settings, tid, "不满意", "不满意", "不满意", responsible_person="王科长")
    assert ev.responsible_person == "王科长"
    assert ticket(engine, tid).responsible_person == "王科长"


def test_concurrent_duplicate_evaluation_gives_one_conflict_not_a_500(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def go(rating):
        barrier.wait()
        try:
            _evaluate(engine, settings, tid, rating, rating, rating)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        except BaseException as e:  # pragma: no cover - reported by the assertion
            outcomes.append(repr(e))

    threads = [threading.Thread(target=go, args=(r,)) for r in ("满意", "不满意")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    with session_scope(engine, read_only=True) as s:
        assert len(s.exec(select(Evaluation).where(Evaluation.ticket_id == tid)).all()) == 1


# ------------------------------------------------------------------ the closed loop


def test_closed_loop_intake_dispatch_handle_reply_evaluate(world):
    """受理 → 自动派单(规则) → 签收 → 回复 → 办结 → 评价 → 关闭, through the public functions."""
    engine, settings = world
    data = TicketIn(
        channel="hotline",
        content="我公司想办理营业执照经营范围变更，窗口说材料不全，请帮忙协调。",
        submitter_name="李女士",
        submitter_phone="13800138000",
        channel_data={"call_id": "1732500000.42"},
    )
    with session_scope(engine) as s:
        t = submit(s, data, settings=settings, actor="agent1")
        tid, number = t.id, t.number
    t = ticket(engine, tid)
    assert t.status == "dispatched" and t.dispatch_mode == "auto"
    (so,) = suborders(engine, tid)
    assert so.department_code == "SCJG" and so.deadline_at == t.deadline_at

    with session_scope(engine) as s:
        d.accept(s, settings, so.id, actor="scjg1", department="SCJG")
    with session_scope(engine) as s:
        d.reply(
            s,
            settings,
            so.id,
            actor="scjg1",
            text="已联系企业补齐材料并完成变更",
            department="SCJG",
        )
    assert ticket(engine, tid).status == "resolved"
    ev = _evaluate(engine, settings, tid, "满意", "满意", "满意", actor="public")
    assert ev.overall == "satisfied"
    t = ticket(engine, tid)
    assert t.status == "closed" and t.number == number
    acts = actions(engine, tid)
    for step in [
        "created",
        "dispatched",
        "suborder_dispatched",
        "suborder_accepted",
        "suborder_replied",
        "resolved",
        "evaluated",
        "closed",
    ]:
        assert step in acts
    assert acts.index("created") < acts.index("dispatched") < acts.index("suborder_accepted")
    assert acts.index("suborder_replied") < acts.index("resolved") < acts.index("evaluated")


def test_closed_loop_parallel_with_return_and_reopen(world):
    """Parallel dispatch at intake, a return, re-dispatch, an unsatisfied round, then closed."""
    engine, settings = world
    data = TicketIn(
        channel="window",
        content="新建厂房需要办理施工许可和不动产登记，同时咨询用工社保补贴政策。",
        channel_data={"window_no": "3"},
        departments=["ZJJ", "ZRZY", "RSJ"],
        send_notice=False,
    )
    with session_scope(engine) as s:
        tid = submit(s, data, settings=settings, actor="window3").id
    zjj, zrzy, rsj = suborders(engine, tid)
    assert ticket(engine, tid).dispatch_mode == "manual"
    with session_scope(engine) as s:
        d.return_suborder(
            s, settings, rsj.id, actor="rsj1", reason="补贴政策请咨询发改", department="RSJ"
        )
        (fgj,) = d.dispatch(s, settings, s.get(Ticket, tid), ["FGJ"], actor="disp")
    for sub, dept in [(zjj, "ZJJ"), (zrzy, "ZRZY"), (fgj, "FGJ")]:
        assert ticket(engine, tid).status == "dispatched"
        with session_scope(engine) as s:
            d.accept(s, settings, sub.id, actor=dept, department=dept)
            d.reply(s, settings, sub.id, actor=dept, text=f"{dept}已办", department=dept)
    assert ticket(engine, tid).status == "resolved"
    _evaluate(engine, settings, tid, "基本满意", "不满意", "基本满意")
    t = ticket(engine, tid)
    assert t.status == "dispatched" and t.round == 2  # 重办 to the three that replied
    with session_scope(engine) as s:
        for again in [so for so in suborders(engine, tid) if so.round == 2]:
            dept = again.department_code
            d.accept(s, settings, again.id, actor=dept)
            d.reply(s, settings, again.id, actor=dept, text="加急办结")
    _evaluate(engine, settings, tid, "满意", "满意", "满意")
    t = ticket(engine, tid)
    assert t.status == "closed" and t.reopen_count == 1 and t.round == 2


# ---- #17 §2: a staff-recorded (回访) evaluation and the submitter's own


def test_the_submitters_rating_supersedes_a_staff_recorded_one_that_reopened(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings)
    staff = _evaluate(
        engine,
        settings,
        tid,
        "不满意",
        "满意",
        "满意",
        actor="agent1",
        source="staff",
        channel="callback",
    )
    t = ticket(engine, tid)
    assert t.status == "dispatched" and t.round == 2 and staff.source == "staff"  # 重办
    # the submitter rates the same round (1) afterwards: recorded, supersedes, follow-up stands
    own = _evaluate(engine, settings, tid, "满意", "满意", "满意", actor="public")
    assert own.round == 1 and own.source == "submitter" and own.channel == "link"
    t = ticket(engine, tid)
    assert t.status == "dispatched" and t.round == 2
    with session_scope(engine, read_only=True) as s:
        rows = {e.id: e for e in s.exec(select(Evaluation).where(Evaluation.ticket_id == tid))}
    assert rows[staff.id].superseded and not rows[own.id].superseded
    with pytest.raises(Conflict):  # once only
        _evaluate(engine, settings, tid, "满意", "满意", "满意", actor="public")
    ev = events(engine, tid, "evaluated")[-1]
    assert ev.detail["supersedes"] == staff.id and ev.detail["source"] == "submitter"


def test_staff_cannot_record_twice_or_over_the_submitter(world):
    engine, settings = world
    tid, _ = _resolved(engine, settings)
    _evaluate(engine, settings, tid, "满意", "满意", "满意", actor="public")
    with pytest.raises(Conflict):
        _evaluate(engine, settings, tid, "不满意", "满意", "满意", actor="a", source="staff")
    assert ticket(engine, tid).status == "closed"
