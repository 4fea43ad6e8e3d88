"""The dialogue state machine, branch by branch (both fronts render exactly these Turns)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from ivr_testing import CLOSED, OPEN, SH

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ivr.engine import DialogState, EngineError, Gather, Hangup, IvrEngine, ToQueue, ToVoicemail
from ivr.menu import Menu, load_menu


def test_start_in_hours_gathers_with_the_welcome_prompt(ivr_engine):
    t = ivr_engine.start(OPEN)
    assert isinstance(t.action, Gather)
    assert t.action.timeout_seconds == 8 and t.action.max_digits == 1
    assert [p.file for p in t.prompts] == ["dxe/welcome"]
    assert "企业服务请按1" in t.prompts[0].text and "人工服务请按0" in t.prompts[0].text
    assert t.state == DialogState()


@pytest.mark.parametrize(
    ("key", "code", "category", "queue", "label"),
    [
        ("1", "enterprise", "enterprise", "dxe-enterprise", "企业服务"),
        ("2", "government", "government", "dxe-government", "政务服务"),
        ("3", "complaint", "complaint", "dxe-complaint", "投诉咨询"),
        ("4", "policy", "complaint", "dxe-complaint", "政策查询"),  # consultation = complaint
        ("0", "operator", None, "dxe-general", "人工服务"),
    ],
)
def test_each_option_routes_to_its_queue(ivr_engine, key, code, category, queue, label):
    t = ivr_engine.step(ivr_engine.start(OPEN).state, key)
    assert isinstance(t.action, ToQueue)
    assert (t.action.option.code, t.action.category, t.action.queue) == (code, category, queue)
    assert t.prompts[0].file == "dxe/transfer"
    assert label in t.prompts[0].text
    assert t.path == key and t.state.finished and t.final


def test_invalid_digit_replays_menu_with_invalid_prompt(ivr_engine):
    t = ivr_engine.step(DialogState(), "9")
    assert isinstance(t.action, Gather)
    assert [p.name for p in t.prompts] == ["invalid", "welcome"]
    assert "输入有误" in t.prompts[0].text
    assert t.state.path == ("9",) and not t.state.finished


def test_timeout_replays_menu_with_no_input_prompt(ivr_engine):
    for timeout in (None, ""):
        t = ivr_engine.step(DialogState(), timeout)
        assert [p.name for p in t.prompts] == ["no_input", "welcome"]
        assert t.path == "t"


def test_star_hash_and_garbage_are_invalid(ivr_engine):
    assert ivr_engine.step(DialogState(), "#").path == "#"
    assert ivr_engine.step(DialogState(), "*").path == "*"
    assert ivr_engine.step(DialogState(), "ab").path == "x"
    assert ivr_engine.step(DialogState(), "12").path == "12"  # two keys: not an option


def test_valid_choice_after_failures_keeps_the_path(ivr_engine):
    t = ivr_engine.step(DialogState(), None)
    t = ivr_engine.step(t.state, "7")
    t = ivr_engine.step(t.state, "2")
    assert isinstance(t.action, ToQueue) and t.action.queue == "dxe-government"
    assert t.path == "t-7-2"


def test_retries_exhausted_goes_to_operator_by_default(ivr_engine):
    t = ivr_engine.step(DialogState(), None)
    t = ivr_engine.step(t.state, "9")
    t = ivr_engine.step(t.state, None)
    assert isinstance(t.action, ToQueue)
    assert t.action.option.code == "operator" and t.action.queue == "dxe-general"
    assert [p.name for p in t.prompts] == ["to_operator"]
    assert t.path == "t-9-t" and t.state.finished


def test_retries_exhausted_hangs_up_when_configured(ivr_engine):
    menu = replace(ivr_engine.menu, on_exhausted="hangup", max_tries=2)
    eng = IvrEngine(menu, ivr_engine.hours)
    t = eng.step(eng.step(DialogState(), "8").state, "8")
    assert isinstance(t.action, Hangup) and t.action.reason == "retries_exhausted"
    assert [p.name for p in t.prompts] == ["goodbye"]


def test_after_hours_goes_to_voicemail_with_callback_promise(ivr_engine):
    t = ivr_engine.start(CLOSED)
    assert isinstance(t.action, ToVoicemail)
    assert t.action.callback_at == datetime(2026, 11, 26, 8, 30, tzinfo=SH)
    assert t.action.reason == "after_hours" and t.action.mailbox == "12345@dianxiaoer"
    assert [p.file for p in t.prompts] == ["dxe/closed"]
    assert "11月26日（星期四）08:30" in t.prompts[0].text
    assert t.state.finished


def test_holiday_daytime_is_after_hours(ivr_engine):
    t = ivr_engine.start(datetime(2026, 10, 2, 10, 0, tzinfo=SH))  # Friday in Golden Week
    assert isinstance(t.action, ToVoicemail)
    assert t.action.callback_at.date() > datetime(2026, 10, 7).date()


def test_make_up_workday_weekend_is_open(ivr_engine):
    t = ivr_engine.start(datetime(2026, 10, 10, 10, 0, tzinfo=SH))  # Saturday, 调休 workday
    assert isinstance(t.action, Gather)


def test_force_mode_overrides_the_calendar(ivr_engine):
    assert isinstance(ivr_engine.start(CLOSED, force="open").action, Gather)
    assert isinstance(ivr_engine.start(OPEN, force="closed").action, ToVoicemail)
    assert isinstance(ivr_engine.start(OPEN, force="bogus").action, Gather)


def test_step_after_a_decision_is_refused(ivr_engine):
    t = ivr_engine.step(DialogState(), "1")
    with pytest.raises(EngineError):
        ivr_engine.step(t.state, "2")


def test_queue_unavailable_and_after_recording(ivr_engine):
    t = ivr_engine.queue_unavailable(OPEN, DialogState(path=("1",)))
    assert isinstance(t.action, ToVoicemail) and t.action.reason == "queue_unavailable"
    assert t.action.callback_at == OPEN  # open now: call back as soon as possible
    assert [p.name for p in t.prompts] == ["busy"] and t.path == "1"
    r = ivr_engine.after_recording()
    assert isinstance(r.action, Hangup) and r.prompts[0].name == "recorded"


def test_state_round_trip_and_corrupt_states(ivr_engine):
    s = ivr_engine.step(ivr_engine.step(DialogState(), None).state, "9").state
    assert DialogState.decode(s.encode(), max_tries=3) == s
    assert DialogState.decode("", max_tries=3) == DialogState()
    for bad in ("t-9-1", "zz", "1--2", "t-" * 20, "<script>"):
        with pytest.raises(EngineError):
            DialogState.decode(bad, max_tries=3)


def test_menu_config_validation():
    good = load_yaml(Settings(), "ivr.yaml")
    Menu.from_dict(good)
    broken = [
        {**good, "menu": {**good["menu"], "options": []}},
        {
            **good,
            "menu": {
                **good["menu"],
                "options": [{"key": "x", "code": "a", "label": "b", "queue": "q"}],
            },
        },
        {**good, "menu": {**good["menu"], "options": good["menu"]["options"] * 2}},
        {**good, "menu": {**good["menu"], "operator_key": "9"}},
        {**good, "menu": {**good["menu"], "on_exhausted": "explode"}},
        {**good, "menu": {**good["menu"], "timeout_seconds": 0}},
        {**good, "prompts": {k: v for k, v in good["prompts"].items() if k != "closed"}},
        {
            **good,
            "menu": {
                **good["menu"],
                "options": [{**good["menu"]["options"][0], "category": "weather"}],
            },
        },
    ]
    for data in broken:
        with pytest.raises(ConfigError, match=r"ivr\.yaml"):
            Menu.from_dict(data)


def test_menu_queues_map_for_the_bridge():
    q = load_menu(Settings()).queues()
    assert q == {
        "dxe-enterprise": "enterprise",
        "dxe-government": "government",
        "dxe-complaint": "complaint",
        "dxe-general": None,
    }
