"""The one auto-dispatch decision (ticketing.dispatch_rule.decide), used by both the ORM dispatch
and intake's batch writer: each branch, its reason string and what it looked up."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from _loop_helpers import prediction

from config.settings import Settings
from ticketing.conduct import accused_in_text
from ticketing.dispatch_rule import classifier_threshold, confidence_of, decide
from ticketing.models import Department


def _lookup(active: dict[str, bool]):
    asked: list[list[str]] = []

    def lookup(codes: Sequence[str]) -> dict[str, Department]:
        asked.append(list(codes))
        return {c: Department(code=c, name=c, active=active[c]) for c in codes if c in active}

    return lookup, asked


@pytest.fixture
def settings() -> Settings:
    return Settings()


def test_a_routing_rule_beats_an_unsure_classifier(settings: Settings) -> None:
    lookup, asked = _lookup({"SWJ": True, "CGJ": True})
    d = decide(settings, "咨询", "我想问一下留抵退税的流程", prediction("CGJ", 0.3), lookup)
    assert d.codes == ["SWJ"]
    assert d.basis == {"basis": "rule", "rule": "tax-refund", "keywords": ["退税", "留抵退税"]}
    assert d.reason is None and d.rule is not None and d.rule.name == "tax-refund"
    assert asked == [["SWJ"]]
    assert d.suggested == "CGJ" and d.confidence == pytest.approx(0.3)


def test_a_rule_and_a_confident_classifier_that_disagree_go_to_a_dispatcher(
    settings: Settings,
) -> None:
    lookup, asked = _lookup({"SWJ": True, "CGJ": True})
    d = decide(settings, "咨询", "我想问一下留抵退税的流程", prediction("CGJ", 0.99), lookup)
    assert d.codes == [] and asked == []
    assert d.reason == "路由规则 tax-refund 指向 SWJ，分类建议 CGJ（置信度 0.99），两者不一致"
    agree = decide(settings, "咨询", "留抵退税的流程", prediction("SWJ", 0.99), lookup)
    assert agree.codes == ["SWJ"] and agree.basis["basis"] == "rule"


def test_a_conduct_complaint_goes_to_the_office_with_the_accused_recorded(
    settings: Settings,
) -> None:
    lookup, asked = _lookup({"YSB": True, "SWJ": True})
    text = "税务局办退税的人吃拿卡要，暗示请吃饭"
    d = decide(settings, None, text, prediction("SWJ", 0.95), lookup)
    assert d.codes == ["YSB"] and d.conduct and d.accused == ("SWJ",)
    assert d.basis["basis"] == "conduct" and set(d.basis["keywords"]) >= {"吃拿卡要", "请吃饭"}
    assert asked == [["YSB"]]
    gone, _ = _lookup({"YSB": False})
    manual = decide(settings, None, text, None, gone)
    assert manual.codes == [] and manual.conduct and "YSB" in (manual.reason or "")
    assert manual.manual_event()["conduct"] is True


def test_a_rule_to_an_inactive_department_means_manual_even_if_confident(
    settings: Settings,
) -> None:
    lookup, _ = _lookup({"SWJ": False, "CGJ": True})
    d = decide(settings, None, "纳税申报出错", prediction("SWJ", 0.99), lookup)
    assert d.codes == []
    assert d.reason == "路由规则 tax-refund 指向的部门不存在或已停用：SWJ"
    assert d.manual_event()["rule"] == "tax-refund"


def test_a_confident_prediction_dispatches_to_its_department(settings: Settings) -> None:
    threshold = classifier_threshold(settings)
    lookup, asked = _lookup({"CGJ": True})
    d = decide(settings, "路灯", "小区门口路灯坏了", prediction("CGJ", threshold), lookup)
    assert d.codes == ["CGJ"]
    assert d.basis == {"basis": "classifier", "confidence": threshold, "threshold": threshold}
    assert asked == [["CGJ"]]
    assert "CGJ" in d.found


@pytest.mark.parametrize(
    ("active", "pred", "reason"),
    [
        ({"CGJ": False}, ("CGJ", 0.99), "分类建议的部门 CGJ 不存在或已停用"),
        ({}, ("CGJ", 0.99), "分类建议的部门 CGJ 不存在或已停用"),
        ({"CGJ": True}, ("", 0.99), "分类器未给出建议部门"),
        ({"CGJ": True}, ("CGJ", 0.1), "分类置信度 0.10 低于阈值 0.60"),
    ],
)
def test_why_not_auto_dispatched(
    settings: Settings, active: dict[str, bool], pred: tuple[str, float], reason: str
) -> None:
    lookup, _ = _lookup(active)
    d = decide(settings, "路灯", "小区门口路灯坏了", prediction(*pred), lookup)
    assert d.codes == [] and d.basis == {}
    assert d.reason == reason
    assert d.manual_event() == {
        "reason": reason,
        "confidence": pytest.approx(pred[1]),
        "threshold": pytest.approx(0.6),
        "suggested_department": pred[0] or None,
        "rule": None,
    }


def test_no_prediction_and_garbage_confidence_are_manual_not_errors(settings: Settings) -> None:
    lookup, asked = _lookup({"CGJ": True})
    d = decide(settings, "", "", None, lookup)
    assert (d.codes, d.reason, d.confidence, d.suggested) == ([], "分类器未给出建议部门", 0.0, None)
    assert asked == []
    for bad in (float("nan"), float("inf"), "x", None):
        assert confidence_of(bad) == 0.0
    assert confidence_of("0.7") == pytest.approx(0.7)


# The accused named in a conduct complaint's own words (ticketing.conduct.accused_in_text)
@pytest.mark.parametrize(
    ("text", "accused"),
    [
        ("市场监管局的工作人员态度恶劣，办个执照跑了五趟", ("SCJG",)),
        ("城管的人在店门口故意刁难我们", ("CGJ",)),
        ("税务局：窗口人员冷硬横推，还暗示请吃饭", ("SWJ",)),
        ("态度恶劣的是城管执法局的那个队员", ("CGJ",)),
        # two departments: the one nearest the conduct words is accused, the other is context
        ("我按税务局的要求去市场监管局办执照，窗口人员故意刁难", ("SCJG",)),
        ("我先去了税务局，后来到市场监督管理局办变更，工作人员态度恶劣", ("SCJG",)),
        # two departments joined as the subject: both accused
        ("税务局和市场监管局的人都故意刁难企业", ("SWJ", "SCJG")),
        # a department named only in another sentence is context
        ("我在税务局办完了手续。后来去住建局，窗口的人吃拿卡要", ("ZJJ",)),
        # no department named: none from the text
        ("窗口工作人员态度恶劣", ()),
        # the conduct office itself is never the accused
        ("营商办转来的，城管态度恶劣", ("CGJ",)),
    ],
)
def test_the_accused_is_the_department_the_conduct_words_are_about(
    settings: Settings, text: str, accused: tuple[str, ...]
) -> None:
    from ticketing.routing import match_conduct

    conduct = match_conduct(settings, text)
    assert conduct is not None
    assert accused_in_text(settings, text, conduct.hits, office=conduct.office) == accused


def test_the_text_names_the_accused_when_no_rule_or_classifier_does(settings: Settings) -> None:
    lookup, _ = _lookup({"YSB": True})
    text = "我先去了税务局，后来到市监局办变更，工作人员态度恶劣"
    registry_asked: list[int] = []

    def registry() -> dict[str, Department]:
        registry_asked.append(1)
        # an administrator renamed a department: the registry's name counts, not only the seed's
        return {
            "SCJG": Department(code="SCJG", name="市监局"),
            "YSB": Department(code="YSB", name="营商办"),
        }

    d = decide(settings, None, text, None, lookup, registry)
    assert d.codes == ["YSB"] and d.accused == ("SCJG",) and d.basis["accused"] == ["SCJG"]
    assert registry_asked == [1]
    # the text's accused come first, then the classifier's (deduplicated)
    both = decide(settings, None, text, prediction("SWJ", 0.95), lookup, registry)
    assert both.accused == ("SCJG", "SWJ")
    # not a conduct complaint: the registry is not read at all
    decide(settings, None, "市监局的电话是多少", None, lookup, registry)
    assert registry_asked == [1, 1]
