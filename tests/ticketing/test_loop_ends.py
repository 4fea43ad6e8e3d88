"""Issue #18's loose ends in the loop: returns awaiting the dispatcher, 主办/协办, correcting the
grade, conduct complaints and 重复件 (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from _loop_helpers import actions, events, make_ticket, prediction, seed_departments, suborders
from _loop_helpers import ticket as load_ticket

import ticketing.dispatch as d
from config.database import session_scope
from ticketing import submit
from ticketing.correction import reclassify
from ticketing.errors import Conflict, InvalidInput, PermissionDenied
from ticketing.models import Ticket, utcnow
from ticketing.sla import deadline_for


@pytest.fixture
def world(engine, settings):
    seed_departments(engine, settings)
    return engine, settings


def _dispatch(engine, settings, tid, codes, **kw):
    with session_scope(engine) as s:
        subs = d.dispatch(s, settings, s.get(Ticket, tid), codes, actor="disp", **kw)
        return [so.id for so in subs]


def _act(engine, settings, fn, so_id, **kw):
    with session_scope(engine) as s:
        return fn(s, settings, so_id, actor="someone", **kw)


def _reply(engine, settings, so_id, text="已处理"):
    _act(engine, settings, d.accept, so_id)
    _act(engine, settings, d.reply, so_id, text=text)


# ------------------------------------------------------------------ 1. a return is looked at


def test_a_return_holds_resolution_until_the_dispatcher_closes_it(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    a, b = _dispatch(engine, settings, tid, ["CGJ", "JTJ"])
    _act(engine, settings, d.return_suborder, b, reason="不属于我局职责")
    _reply(engine, settings, a)
    t = load_ticket(engine, tid)
    assert t.status == "dispatched"  # JTJ's "not ours" has not been looked at
    (held,) = events(engine, tid, "resolution_held")
    assert held.detail["departments"] == ["JTJ"]
    # a handler cannot close it; the reason is required
    with session_scope(engine) as s, pytest.raises(PermissionDenied):
        d.close_return(s, settings, b, actor="h", reason="x", department="JTJ")
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        d.close_return(s, settings, b, actor="disp", reason="  ")
    with session_scope(engine) as s:
        d.close_return(s, settings, b, actor="disp", reason="城管已答复全部诉求，交通局无需参与")
    t = load_ticket(engine, tid)
    assert t.status == "resolved"
    so_b = next(s for s in suborders(engine, tid) if s.id == b)
    assert so_b.return_resolution == "closed" and so_b.return_handled_at is not None
    # the submitter is told of the resolution once the close completed it
    assert actions(engine, tid)[-3:] == ["return_closed", "resolved", "submitter_told"]
    with session_scope(engine) as s, pytest.raises(Conflict):  # already handled
        d.close_return(s, settings, b, actor="disp", reason="再次关闭")


def test_redispatching_handles_the_return(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    a, b = _dispatch(engine, settings, tid, ["CGJ", "JTJ"])
    _act(engine, settings, d.return_suborder, b, reason="应由住建局办理")
    (c,) = _dispatch(engine, settings, tid, ["ZJJ"])
    so_b = next(s for s in suborders(engine, tid) if s.id == b)
    assert so_b.return_resolution == "redispatched" and "ZJJ" in so_b.return_note
    assert events(engine, tid, "dispatch_added")[0].detail["handled_returns"] == [b]
    _reply(engine, settings, a)
    assert load_ticket(engine, tid).status == "dispatched"  # ZJJ still working
    _reply(engine, settings, c)
    assert load_ticket(engine, tid).status == "resolved"


def test_all_returned_goes_back_to_the_dispatcher_in_chinese(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    (a,) = _dispatch(engine, settings, tid, ["CGJ"])
    _act(engine, settings, d.return_suborder, a, reason="不属于本部门")
    t = load_ticket(engine, tid)
    assert t.status == "pending_dispatch"
    (ev,) = events(engine, tid, "returned_to_dispatcher")
    assert ev.detail["reason"] == "全部子工单已退回，待派单员重新派单"


# ------------------------------------------------------------------ 2. 主办 / 协办


def test_the_leads_reply_resolves_once_assistants_replied_or_were_released(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    t = load_ticket(engine, tid)
    early = t.deadline_at - timedelta(hours=1)
    lead, helper, other = _dispatch(
        engine, settings, tid, ["CGJ", "JTJ", "ZJJ"], lead="CGJ", deadlines={"JTJ": early}
    )
    subs = {s.id: s for s in suborders(engine, tid)}
    assert subs[lead].role == "lead" and subs[helper].role == "assist"
    assert subs[other].role == "assist"
    assert subs[helper].deadline_at == early and subs[lead].deadline_at == t.deadline_at
    _reply(engine, settings, lead)
    assert load_ticket(engine, tid).status == "dispatched"  # 协办 still open
    _reply(engine, settings, helper)
    assert load_ticket(engine, tid).status == "dispatched"
    with session_scope(engine) as s, pytest.raises(Conflict):  # the lead cannot be released
        d.release(s, settings, lead, actor="disp", reason="x")
    with session_scope(engine) as s:
        d.release(s, settings, other, actor="disp", reason="主办已统筹解决")
    t = load_ticket(engine, tid)
    assert t.status == "resolved"
    assert [s.status for s in suborders(engine, tid)] == ["replied", "replied", "released"]


def test_lead_must_be_one_of_the_departments_and_only_one_per_round(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        d.dispatch(s, settings, s.get(Ticket, tid), ["CGJ"], actor="x", lead="JTJ")
    _dispatch(engine, settings, tid, ["CGJ"])
    (_z,) = _dispatch(engine, settings, tid, ["ZJJ"], lead="ZJJ")
    roles = {s.department_code: s.role for s in suborders(engine, tid)}
    assert roles == {"CGJ": "assist", "ZJJ": "lead"}  # the earlier department assists the lead
    with session_scope(engine) as s, pytest.raises(Conflict):
        d.dispatch(s, settings, s.get(Ticket, tid), ["JTJ"], actor="x", lead="JTJ")
    (j,) = _dispatch(engine, settings, tid, ["JTJ"])
    assert {s.id: s.role for s in suborders(engine, tid)}[j] == "assist"


# ------------------------------------------------------------------ 3. correcting the grade


def test_reclassify_moves_the_deadline_from_now_and_records_the_reason(world):
    engine, settings = world
    tid = make_ticket(engine, settings, urgency="general")
    _dispatch(engine, settings, tid, ["CGJ"])
    before = load_ticket(engine, tid)
    with session_scope(engine) as s:
        reclassify(s, settings, tid, actor="disp", urgency="critical", reason="涉及停产，应为紧要")
    t = load_ticket(engine, tid)
    assert t.urgency == "critical" and t.category == before.category
    expected, basis = deadline_for(settings, t.category, "critical", utcnow())
    assert abs((t.deadline_at - expected).total_seconds()) < 60 and t.sla_basis == basis
    assert t.deadline_at != before.deadline_at
    (so,) = suborders(engine, tid)
    assert so.deadline_at == t.deadline_at  # followed the committed deadline
    (ev,) = events(engine, tid, "reclassified")
    assert ev.detail["reason"] == "涉及停产，应为紧要"
    assert ev.detail["urgency"] == {"from": "general", "to": "critical"}
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        reclassify(s, settings, tid, actor="disp", urgency="critical", reason="同样")
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        reclassify(s, settings, tid, actor="disp", category="general", reason="x")
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        reclassify(s, settings, tid, actor="disp", urgency="general", reason="")


# ------------------------------------------------------------------ 4. conduct complaints


CONDUCT = "市场监督管理局的办事人员故意刁难，还暗示要请吃饭才给办营业执照变更"


def test_a_conduct_complaint_goes_to_the_office_never_to_the_accused(world):
    engine, settings = world
    tid = make_ticket(engine, settings, content=CONDUCT, category="complaint")
    with session_scope(engine) as s:
        subs = d.auto_dispatch(s, settings, s.get(Ticket, tid), prediction("SCJG", 0.3), "sys")
        assert [so.department_code for so in subs] == ["YSB"]
    t = load_ticket(engine, tid)
    assert t.conduct is True and t.conduct_accused == "SCJG"
    ev = events(engine, tid, "dispatched")[0]
    assert ev.detail["basis"] == "conduct" and ev.detail["accused"] == ["SCJG"]
    assert "刁难" in ev.detail["keywords"]
    with session_scope(engine) as s, pytest.raises(InvalidInput, match="被投诉部门"):
        d.dispatch(s, settings, s.get(Ticket, tid), ["SCJG"], actor="disp")


def test_the_accused_is_read_from_the_text_when_nothing_else_names_it(world):
    engine, settings = world
    text = "我先去税务局开了证明，又去城管办占道许可，城管的人态度恶劣，故意拖延"
    tid = make_ticket(engine, settings, content=text, category="complaint")
    with session_scope(engine) as s:
        subs = d.auto_dispatch(s, settings, s.get(Ticket, tid), prediction("JXJ", 0.1), "sys")
        assert [so.department_code for so in subs] == ["YSB"]
    # no rule matches: CGJ comes from the text (税务局 is only context), JXJ from the classifier
    assert load_ticket(engine, tid).conduct_accused == "CGJ,JXJ"
    with session_scope(engine) as s, pytest.raises(InvalidInput, match="被投诉部门"):
        d.dispatch(s, settings, s.get(Ticket, tid), ["CGJ"], actor="disp")
    with session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["SWJ"], actor="disp")


def test_conduct_complaints_through_intake_are_flagged(world):
    engine, settings = world
    with session_scope(engine) as s:
        t = submit(
            s,
            {"channel": "web", "content": CONDUCT, "submitter_phone": "13800138000"},
            settings=settings,
            actor="public",
        )
        number = t.number
    with session_scope(engine, read_only=True) as s:
        t = s.exec(Ticket.__table__.select().where(Ticket.number == number)).first()
    assert t.conduct is True and "SCJG" in (t.conduct_accused or "")
    assert [so.department_code for so in suborders(engine, t.id)] == ["YSB"]


def test_rule_and_confident_classifier_disagreeing_means_manual(world):
    engine, settings = world
    tid = make_ticket(engine, settings, content="我公司经营范围变更后，营业执照怎么换发？")
    with session_scope(engine) as s:
        assert d.auto_dispatch(s, settings, s.get(Ticket, tid), prediction("SWJ", 0.99), "s") == []
    (ev,) = events(engine, tid, "manual_dispatch_required")
    assert "不一致" in ev.detail["reason"] and ev.detail["rule"] == "business-licence"


# ------------------------------------------------------------------ 5. 重复件


def _file(engine, settings, content, phone="13800138000", **kw):
    with session_scope(engine) as s:
        t = submit(
            s,
            {"channel": "web", "content": content, "submitter_phone": phone, **kw},
            settings=settings,
            actor="public",
        )
        return t.id


LIGHT = "园区道路路灯坏了一个多月，晚上货车进出非常危险，请尽快维修路灯"
LIGHT_AGAIN = "上次反映的园区道路路灯还是坏的，晚上货车进出非常危险，请尽快维修"


def test_a_repeat_from_the_same_phone_is_linked_to_the_first_and_shows_its_history(world):
    from ticketing.duplicates import related_ticket

    engine, settings = world
    first = _file(engine, settings, LIGHT, category="enterprise")
    second = _file(engine, settings, LIGHT_AGAIN, category="enterprise")
    third = _file(engine, settings, LIGHT_AGAIN + "，第三次反映", category="enterprise")
    other = _file(engine, settings, "我想咨询留抵退税的办理流程", category="enterprise")
    stranger = _file(engine, settings, LIGHT, phone="13900139000", category="enterprise")
    t2, t3 = load_ticket(engine, second), load_ticket(engine, third)
    assert t2.duplicate_of_id == first and t3.duplicate_of_id == first  # the chain's first
    assert load_ticket(engine, first).duplicate_of_id is None
    assert load_ticket(engine, other).duplicate_of_id is None  # another subject
    assert load_ticket(engine, stranger).duplicate_of_id is None  # another submitter
    (linked,) = events(engine, second, "duplicate_linked")
    assert linked.detail["duplicate_of_id"] == first and linked.detail["similarity"] >= 0.4
    (linked,) = events(engine, third, "duplicate_linked")
    assert linked.detail["duplicate_of_id"] in (first, second)
    # the department on the repeat sees the first matter and its reply
    subs = suborders(engine, first)
    so_id = subs[0].id if subs else _dispatch(engine, settings, first, ["CGJ"])[0]
    _reply(engine, settings, so_id, text="已安排维修")
    with session_scope(engine, read_only=True) as s:
        rel = related_ticket(s, s.get(Ticket, second))
    assert rel is not None and rel.replies == ["已安排维修"]


def test_repeats_inside_one_batch_are_linked_as_one_by_one(world):
    from ticketing import submit_many

    engine, settings = world
    items = [
        ({"channel": "web", "content": c, "submitter_phone": "13300133000"}, "public")
        for c in (LIGHT, LIGHT_AGAIN, "我想咨询留抵退税的办理流程", LIGHT_AGAIN + "，再次反映")
    ]
    with session_scope(engine) as s:
        ids = [t.id for t in submit_many(s, items, settings=settings)]
    got = [load_ticket(engine, i).duplicate_of_id for i in ids]
    assert got == [None, ids[0], None, ids[0]]
    assert len(events(engine, ids[3], "duplicate_linked")) == 1


def test_a_repeat_by_enterprise_and_the_closed_window(world):
    engine, settings = world
    uscc = "91110000600037341L"
    first = _file(engine, settings, LIGHT, phone="13700137000", enterprise_uscc=uscc)
    second = _file(engine, settings, LIGHT_AGAIN, phone="13600136000", enterprise_uscc=uscc)
    assert load_ticket(engine, second).duplicate_of_id == first
    # closed long ago: no longer a repeat
    with session_scope(engine) as s:
        for tid in (first, second):
            t = s.get(Ticket, tid)
            t.status = "closed"
            t.closed_at = utcnow() - timedelta(days=settings.duplicate_closed_days + 1)
            s.add(t)
    third = _file(engine, settings, LIGHT_AGAIN, phone="13500135000", enterprise_uscc=uscc)
    assert load_ticket(engine, third).duplicate_of_id is None
