"""Dispatch (§10–11): routing rules, the classifier threshold, manual/parallel dispatch, extensions."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import pytest
from _loop_helpers import (
    actions,
    events,
    make_ticket,
    prediction,
    seed_departments,
    snapshot,
    suborders,
    ticket,
)
from sqlmodel import select

import ticketing.dispatch as d
from config.database import session_scope
from config.loader import ConfigError
from config.settings import DEFAULTS_DIR, Settings
from ticketing.dispatch_rule import classifier_threshold
from ticketing.errors import Conflict, InvalidInput, PermissionDenied
from ticketing.models import Department, SubOrder, Ticket, utcnow
from ticketing.routing import match_rule


@pytest.fixture
def world(engine, settings):
    seed_departments(engine, settings)
    return engine, settings


def _config_dir(tmp_path, **files: str):
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    for name, text in files.items():
        (cfg / name).write_text(text, encoding="utf-8")
    return cfg


def _t(engine, tid) -> Ticket:
    return ticket(engine, tid)


# ------------------------------------------------------------------ routing rules


def test_match_rule_first_rule_wins_and_records_hits(settings):
    rule = match_rule(settings, "营业执照变更以后，经营范围变更了，纳税申报要不要改")
    assert rule is not None
    assert rule.name == "business-licence"  # first in the file, although 纳税申报 hits tax-refund
    assert rule.departments == ("SCJG",)
    assert set(rule.hits) == {"营业执照变更", "经营范围变更"}
    assert match_rule(settings, "园区路灯坏了") is None
    assert match_rule(settings, "") is None


def test_match_rule_normalises_full_width(tmp_path):
    cfg = _config_dir(
        tmp_path,
        **{
            "routing.yaml": "rules:\n  - {name: eia, keywords: [EIA], departments: [STHJ]}\n"
            "  - {name: vat, keywords: [ＶＡＴ专票], departments: [SW]}\n"
        },
    )
    s = Settings(config_dir=cfg)
    assert match_rule(s, "请问ＥＩＡ报告怎么做").hits == ("EIA",)
    # the keyword is folded too (once, when the file is parsed), and reported as written
    vat = match_rule(s, "vat专票开不出来")
    assert vat is not None and vat.hits == ("ＶＡＴ专票",) and vat.departments == ("SW",)


def test_malformed_routing_rules_are_a_config_error(tmp_path):
    cfg = _config_dir(tmp_path, **{"routing.yaml": "rules:\n  - {name: bad, keywords: []}\n"})
    with pytest.raises(ConfigError, match="bad"):
        match_rule(Settings(config_dir=cfg), "任何内容")


# ------------------------------------------------------------------ auto dispatch


def test_auto_dispatch_by_routing_rule_beats_an_unsure_classifier(world):
    """A rule wins over a classifier below its threshold; a confident classifier that names
    another department disagrees with the rule, which sends the ticket to a dispatcher (issue #18,
    tests/ticketing/test_loop_ends.py)."""
    engine, settings = world
    tid = make_ticket(engine, settings, content="我公司需要办理经营范围变更，营业执照怎么换发？")
    with session_scope(engine) as s:
        subs = d.auto_dispatch(s, settings, s.get(Ticket, tid), prediction("SWJ", 0.5), "system")
        assert [so.department_code for so in subs] == ["SCJG"]
    t = _t(engine, tid)
    assert t.status == "dispatched" and t.dispatch_mode == "auto"
    assert t.suggested_department == "SWJ" and t.classifier_confidence == pytest.approx(0.5)
    ev = events(engine, tid, "dispatched")[0]
    assert ev.detail["basis"] == "rule" and ev.detail["rule"] == "business-licence"
    assert set(ev.detail["keywords"]) == {"经营范围变更"}
    (so,) = suborders(engine, tid)
    assert so.status == "dispatched" and so.deadline_at == t.deadline_at and so.round == 1


def test_auto_dispatch_by_confident_prediction(world):
    engine, settings = world
    tid = make_ticket(engine, settings)  # no routing keyword
    with session_scope(engine) as s:
        subs = d.auto_dispatch(s, settings, s.get(Ticket, tid), prediction("CGJ", 0.6), "system")
        assert [so.department_code for so in subs] == ["CGJ"]  # exactly at the threshold
    t = _t(engine, tid)
    assert t.status == "dispatched" and t.dispatch_mode == "auto"
    assert events(engine, tid, "dispatched")[0].detail["basis"] == "classifier"


def test_low_confidence_falls_back_to_manual_dispatch(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s:
        assert (
            d.auto_dispatch(s, settings, s.get(Ticket, tid), prediction("CGJ", 0.42), "sys") == []
        )
    t = _t(engine, tid)
    assert t.status == "pending_dispatch" and t.dispatch_mode == "manual"
    assert suborders(engine, tid) == []
    (ev,) = events(engine, tid, "manual_dispatch_required")
    assert "0.42" in ev.detail["reason"] and "0.60" in ev.detail["reason"]
    assert ev.detail["suggested_department"] == "CGJ"


def test_threshold_comes_from_categories_yaml_unless_set_explicitly(world, tmp_path, monkeypatch):
    monkeypatch.delenv("CALLCENTER_CLASSIFIER_THRESHOLD", raising=False)
    engine, _ = world
    cats = (DEFAULTS_DIR / "categories.yaml").read_text(encoding="utf-8")
    cats = cats.replace("classifier_threshold: 0.6", "classifier_threshold: 0.95")
    cfg = _config_dir(tmp_path, **{"categories.yaml": cats})
    from_yaml = Settings(config_dir=cfg)
    explicit = Settings(config_dir=cfg, classifier_threshold=0.5)
    assert classifier_threshold(from_yaml) == pytest.approx(0.95)
    assert classifier_threshold(explicit) == pytest.approx(0.5)
    t1 = make_ticket(engine, from_yaml)
    t2 = make_ticket(engine, explicit)
    with session_scope(engine) as s:
        assert d.auto_dispatch(s, from_yaml, s.get(Ticket, t1), prediction("CGJ", 0.9), "x") == []
        assert (
            len(d.auto_dispatch(s, explicit, s.get(Ticket, t2), prediction("CGJ", 0.9), "x")) == 1
        )


def test_rule_naming_unknown_department_goes_manual_with_reason(world, tmp_path):
    engine, _ = world
    cfg = _config_dir(
        tmp_path,
        **{"routing.yaml": "rules:\n  - {name: ghost, keywords: [路灯], departments: [NOPE]}\n"},
    )
    s2 = Settings(config_dir=cfg)
    tid = make_ticket(engine, s2, content="路灯坏了")
    with session_scope(engine) as s:
        assert d.auto_dispatch(s, s2, s.get(Ticket, tid), prediction("CGJ", 0.99), "x") == []
    (ev,) = events(engine, tid, "manual_dispatch_required")
    assert "ghost" in ev.detail["reason"] and "NOPE" in ev.detail["reason"]


def test_auto_dispatch_refuses_an_already_dispatched_ticket(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["CGJ"], actor="disp")
    before = snapshot(engine, tid)
    with pytest.raises(Conflict, match="办理中"), session_scope(engine) as s:
        d.auto_dispatch(s, settings, s.get(Ticket, tid), prediction("CGJ", 0.99), "x")
    assert snapshot(engine, tid) == before


# ------------------------------------------------------------------ manual / parallel dispatch


def test_parallel_dispatch_creates_one_suborder_each_with_own_deadline(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    t = _t(engine, tid)
    own = t.deadline_at - timedelta(hours=5)
    with session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["SCJG", "SWJ"], actor="disp")
        d.dispatch(
            s, settings, s.get(Ticket, tid), "RSJ", actor="disp", deadline=own, instructions="核实"
        )
    subs = suborders(engine, tid)
    assert [x.department_code for x in subs] == ["SCJG", "SWJ", "RSJ"]
    assert [x.deadline_at for x in subs] == [t.deadline_at, t.deadline_at, own]
    assert subs[2].instructions == "核实" and all(x.dispatched_by == "disp" for x in subs)
    acts = actions(engine, tid)
    assert acts.count("suborder_dispatched") == 3
    assert acts.count("dispatched") == 1 and acts.count("dispatch_added") == 1
    assert _t(engine, tid).dispatch_mode == "manual"


@pytest.mark.parametrize(
    ("departments", "exc", "pattern"),
    [
        ([], InvalidInput, "至少"),
        (["SCJG", "SCJG"], InvalidInput, "重复"),
        (["SCJG", "NOPE"], InvalidInput, "NOPE"),
        (["SCJG", " "], InvalidInput, "不能为空"),
    ],
)
def test_dispatch_rejects_bad_department_lists(world, departments, exc, pattern):
    engine, settings = world
    tid = make_ticket(engine, settings)
    before = snapshot(engine, tid)
    with pytest.raises(exc, match=pattern), session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), departments, actor="disp")
    assert snapshot(engine, tid) == before


def test_dispatch_rejects_inactive_department(world):
    engine, settings = world
    with session_scope(engine) as s:
        s.exec(select(Department).where(Department.code == "JTJ")).one().active = False
    tid = make_ticket(engine, settings)
    with pytest.raises(InvalidInput, match="停用"), session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["JTJ"], actor="disp")
    assert suborders(engine, tid) == []


def test_no_duplicate_live_suborder_but_returned_department_may_be_redispatched(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s:
        _a, b = d.dispatch(s, settings, s.get(Ticket, tid), ["SCJG", "SWJ"], actor="disp")
    before = snapshot(engine, tid)
    with pytest.raises(Conflict, match="不能重复派单：税务局"), session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["RSJ", "SWJ"], actor="disp")
    assert snapshot(engine, tid) == before  # RSJ was not created either
    with session_scope(engine) as s:
        d.return_suborder(s, settings, b.id, actor="h", reason="不属于本部门职责", department="SWJ")
    with session_scope(engine) as s:
        (again,) = d.dispatch(s, settings, s.get(Ticket, tid), ["SWJ"], actor="disp")
    assert again.id != b.id and again.status == "dispatched"


def test_dispatch_deadline_bounds(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    t = _t(engine, tid)
    later = t.deadline_at + timedelta(days=3)
    with pytest.raises(InvalidInput, match="承诺时限"), session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["SCJG"], actor="disp", deadline=later)
    with pytest.raises(InvalidInput, match="早于当前"), session_scope(engine) as s:
        d.dispatch(
            s,
            settings,
            s.get(Ticket, tid),
            ["SCJG"],
            actor="disp",
            deadline=utcnow() - timedelta(1),
        )
    assert suborders(engine, tid) == []
    with session_scope(engine) as s:
        (so,) = d.dispatch(
            s,
            settings,
            s.get(Ticket, tid),
            ["SCJG"],
            actor="disp",
            deadline=later,
            allow_beyond_ticket_deadline=True,
        )
    assert so.deadline_at == later
    assert events(engine, tid, "suborder_dispatched")[0].detail["beyond_ticket_deadline"] is True


def test_dispatch_refuses_resolved_and_closed_tickets(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s:
        (so,) = d.dispatch(s, settings, s.get(Ticket, tid), ["SCJG"], actor="disp")
        d.accept(s, settings, so.id, actor="h")
        d.reply(s, settings, so.id, actor="h", text="已处理完毕")
    assert _t(engine, tid).status == "resolved"
    before = snapshot(engine, tid)
    with pytest.raises(Conflict, match="已办结"), session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, tid), ["SWJ"], actor="disp")
    assert snapshot(engine, tid) == before


# ------------------------------------------------------------------ extensions


def _dispatched_with_deadline(engine, settings, local_deadline: datetime):
    """A ticket whose (and whose one sub-order's) deadline is `local_deadline` Asia/Shanghai."""
    utc = local_deadline - timedelta(hours=8)
    tid = make_ticket(engine, settings, deadline=utc)
    with session_scope(engine) as s:
        (so,) = d.dispatch(s, settings, s.get(Ticket, tid), ["SWJ"], actor="disp")
        d.accept(s, settings, so.id, actor="h", department="SWJ")
    return tid, so.id


def test_extension_in_working_days_across_national_day_approved(world):
    engine, settings = world
    # Wed 30 Sep 2026 18:00 local; 1-7 Oct is the National Day holiday
    tid, sid = _dispatched_with_deadline(engine, settings, datetime(2026, 9, 30, 18, 0))
    with session_scope(engine) as s:
        so = d.request_extension(
            s,
            settings,
            sid,
            actor="h",
            department="SWJ",
            amount=2,
            unit="working_days",
            reason="需现场核查",
        )
        assert so.status == "extension_requested"
    # 8 Oct (Thu) and 9 Oct (Fri) are the two working days → Fri 9 Oct 18:00 local = 10:00 UTC
    assert suborders(engine, tid)[0].extension_until == datetime(2026, 10, 9, 10, 0)
    with pytest.raises(PermissionDenied), session_scope(engine) as s:
        d.decide_extension(s, settings, sid, actor="h", approve=True, department="SWJ")
    with session_scope(engine) as s:
        d.decide_extension(s, settings, sid, actor="sup", approve=True, note="同意")
    (so,) = suborders(engine, tid)
    assert so.status == "accepted" and so.deadline_at == datetime(2026, 10, 9, 10, 0)
    t = _t(engine, tid)
    assert t.deadline_at == datetime(2026, 10, 9, 10, 0)  # the committed deadline follows
    (ev,) = events(engine, tid, "extension_approved")
    assert ev.detail["previous_deadline"].startswith("2026-09-30T10:00")


def test_extension_beyond_max_is_refused_and_rejection_keeps_deadline(world):
    engine, settings = world
    tid, sid = _dispatched_with_deadline(engine, settings, datetime(2026, 9, 30, 18, 0))
    before = snapshot(engine, tid)
    # max 5 working days: 8, 9, 10 (make-up Saturday), 12, 13 Oct → 13 Oct 18:00 local
    with pytest.raises(InvalidInput, match="2026-10-13 18:00"), session_scope(engine) as s:
        d.request_extension(
            s,
            settings,
            sid,
            actor="h",
            department="SWJ",
            reason="复杂",
            until=datetime(2026, 10, 14, 10, 0),
        )
    with pytest.raises(InvalidInput, match="晚于"), session_scope(engine) as s:
        d.request_extension(
            s, settings, sid, actor="h", reason="x", until=datetime(2026, 9, 29, 10, 0)
        )
    for kw, pat in [
        ({"amount": 1, "unit": "weeks"}, "单位"),
        ({"amount": 0, "unit": "working_days"}, "正整数"),
        ({"amount": 1, "unit": "hours", "until": datetime(2026, 10, 9)}, "二者选一"),
        ({}, "二者选一"),
    ]:
        with pytest.raises(InvalidInput, match=pat), session_scope(engine) as s:
            d.request_extension(s, settings, sid, actor="h", reason="x", **kw)
    with pytest.raises(InvalidInput, match="延期原因"), session_scope(engine) as s:
        d.request_extension(s, settings, sid, actor="h", reason=" ", amount=1, unit="hours")
    assert snapshot(engine, tid) == before

    with session_scope(engine) as s:
        d.request_extension(
            s, settings, sid, actor="h", reason="复杂", until=datetime(2026, 10, 13, 10, 0)
        )
        d.decide_extension(s, settings, sid, actor="sup", approve=False, note="不予延期")
    (so,) = suborders(engine, tid)
    assert so.status == "accepted" and so.deadline_at == datetime(2026, 9, 30, 10, 0)
    assert so.extension_until is None
    assert _t(engine, tid).deadline_at == datetime(2026, 9, 30, 10, 0)
    assert events(engine, tid, "extension_rejected")[0].detail["note"] == "不予延期"


def test_extension_over_a_plain_weekend(world):
    engine, settings = world
    # Fri 4 Dec 2026 18:00 local + 2 working days → Tue 8 Dec 18:00 local
    tid, sid = _dispatched_with_deadline(engine, settings, datetime(2026, 12, 4, 18, 0))
    with session_scope(engine) as s:
        d.request_extension(
            s, settings, sid, actor="h", reason="等材料", amount=2, unit="working_days"
        )
    assert suborders(engine, tid)[0].extension_until == datetime(2026, 12, 8, 10, 0)


def test_dispatch_with_missing_config_dir_file_uses_defaults(tmp_path, world):
    # a partial config_dir (only one file overridden) still finds the other defaults
    engine, _ = world
    cfg = _config_dir(tmp_path)
    shutil.copy(DEFAULTS_DIR / "routing.yaml", cfg / "routing.yaml")
    s2 = Settings(config_dir=cfg)
    tid = make_ticket(engine, s2, content="申请退税")
    with session_scope(engine) as s:
        (so,) = d.auto_dispatch(s, s2, s.get(Ticket, tid), prediction("CGJ", 0.1), "x")
    assert so.department_code == "SWJ"
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(SubOrder)).all()
