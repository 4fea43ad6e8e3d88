"""§13 levels as a pure function of the clock and `now`: every boundary, across 国庆 and a 调休
Saturday, levels that never go down, and the next instant the scan must look again."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from config.loader import ConfigError, load_yaml
from config.settings import Settings
from ticketing.sla import add_duration
from ticketing.sla_levels import Clock, evaluate, rules_from
from ticketing.worktime import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
MIN = timedelta(minutes=1)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def rules(settings):
    return rules_from(load_yaml(settings, "sla.yaml"))


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def level(rules, cal, clock: Clock, now: datetime) -> str:
    return evaluate(rules, clock, now, cal.add_working_hours).level


def test_exactly_two_thirds_used_is_blue_a_minute_before_is_not(settings, rules):
    cal = WorkCalendar(settings)
    start = local(2025, 11, 3, 9, 0)  # a Monday
    due = start + timedelta(hours=3)  # 2/3 falls on 11:00 exactly
    clock = Clock("general", "finish", start, due, moved_at=start)
    two_thirds = start + timedelta(hours=2)
    assert level(rules, cal, clock, two_thirds - MIN) == "none"
    assert level(rules, cal, clock, two_thirds - timedelta(microseconds=1)) == "none"
    assert level(rules, cal, clock, two_thirds) == "blue"
    assert level(rules, cal, clock, two_thirds + MIN) == "blue"
    v = evaluate(rules, clock, two_thirds - MIN, cal.add_working_hours)
    assert v.next_at == two_thirds  # the scan reads it again exactly then


def test_a_third_that_does_not_divide_is_rounded_up_never_early(settings, rules):
    cal = WorkCalendar(settings)
    start = local(2025, 11, 3, 9, 0)
    due = start + timedelta(seconds=10)  # 2/3 = 6.666… s
    clock = Clock("general", "finish", start, due, moved_at=start)
    v = evaluate(rules, clock, start, cal.add_working_hours)
    assert v.next_at == start + timedelta(microseconds=6_666_667)
    assert level(rules, cal, clock, start + timedelta(microseconds=6_666_666)) == "none"
    assert level(rules, cal, clock, v.next_at) == "blue"


def test_levels_by_urgency_and_overdue_is_its_own_state(settings, rules):
    cal = WorkCalendar(settings)
    start = local(2025, 11, 3, 9, 0)
    due = start + timedelta(hours=10)
    urgent = Clock("urgent", "finish", start, due, moved_at=start + timedelta(hours=9))
    general = Clock("general", "finish", start, due, moved_at=start + timedelta(hours=9))
    critical = Clock("critical", "finish", start, due, moved_at=start + timedelta(hours=9))
    at = start + timedelta(hours=8)  # 80 % used
    assert level(rules, cal, urgent, at - MIN) == "blue"
    assert level(rules, cal, urgent, at) == "yellow"  # fairly urgent, near the deadline
    assert level(rules, cal, general, at) == "blue"
    assert level(rules, cal, general, start + timedelta(hours=9)) == "yellow"  # 90 %: anyone
    assert level(rules, cal, critical, start + timedelta(hours=5) - MIN) == "none"
    assert level(rules, cal, critical, start + timedelta(hours=5)) == "red"  # critical, half
    run_out = start + timedelta(hours=9.5)  # 95 % used: about to run out, whatever the urgency
    assert level(rules, cal, general, run_out - MIN) == "yellow"
    assert level(rules, cal, general, run_out) == "red"
    assert level(rules, cal, general, due - MIN) == "red"
    v = evaluate(rules, general, due, cal.add_working_hours)
    assert (v.level, v.next_at) == ("overdue", None)
    assert level(rules, cal, critical, due + MIN) == "overdue"


def test_levels_never_go_down_until_the_matter_moves_on(settings, rules):
    cal = WorkCalendar(settings)
    start = local(2025, 11, 3, 9, 0)
    clock = Clock("general", "finish", start, start + timedelta(hours=3), moved_at=start)
    # an extension would make the share used smaller; the level reached on this step stays
    longer = Clock("general", "finish", start, start + timedelta(days=30), moved_at=start)
    at = start + timedelta(hours=2)
    assert level(rules, cal, clock, at) == "blue"
    assert level(rules, cal, Clock(**{**longer.__dict__, "reached": "blue"}), at) == "blue"
    # a new step (the matter moved on) starts from none
    assert level(rules, cal, longer, at) == "none"


def test_red_for_beyond_power_and_cross_department_stalls(settings, rules):
    cal = WorkCalendar(settings)
    start = local(2025, 11, 3, 9, 0)  # Monday
    due = start + timedelta(days=20)
    returned = Clock("general", "ticket", start, due, moved_at=start, beyond_power=True)
    assert level(rules, cal, returned, start + MIN) == "red"
    # the same on a sub-order's step is not the rule (steps: [ticket])
    assert level(rules, cal, Clock(**{**returned.__dict__, "step": "finish"}), start + MIN) == (
        "none"
    )
    cross = Clock("general", "ticket", start, due, moved_at=start, cross_department=True)
    assert level(rules, cal, cross, start + timedelta(hours=8) - MIN) == "none"
    assert level(rules, cal, cross, start + timedelta(hours=8)) == "red"  # 8 working hours


def test_a_general_matter_stalls_only_on_working_hours_across_national_day(settings, rules):
    """Left on 30 Sep 2025 at 12:00: 1-8 Oct are off, so 16 working hours end on 9 Oct 04:00."""
    cal = WorkCalendar(settings)
    moved = local(2025, 9, 30, 12, 0)
    due = add_duration(settings, moved, 5, "working_days")
    # 国庆 Oct 1-8 off; Oct 9, 10, Sat 11 (调休), 13, 14 → 14 Oct 18:00
    assert due == local(2025, 10, 14, 18, 0)
    clock = Clock("general", "finish", moved, due, moved_at=moved)
    stall = local(2025, 10, 9, 4, 0)
    assert cal.add_working_hours(moved, 16) == stall
    assert level(rules, cal, clock, stall - MIN) == "none"
    assert level(rules, cal, clock, stall) == "blue"
    assert evaluate(rules, clock, moved, cal.add_working_hours).next_at == stall


def test_a_make_up_saturday_counts_as_working_time(settings):
    cal = WorkCalendar(settings)
    fri = local(2025, 10, 10, 12, 0)  # Friday; Sat 11 Oct 2025 is a 调休 workday
    assert cal.add_working_hours(fri, 24) == local(2025, 10, 11, 12, 0)
    sat = local(2025, 10, 18, 0, 0)  # an ordinary Saturday: skipped
    assert cal.add_working_hours(local(2025, 10, 17, 12, 0), 24) == local(2025, 10, 20, 12, 0)
    assert cal.working_hours_between(sat, sat + timedelta(days=2)) == 0
    assert cal.working_hours_between(fri, local(2025, 10, 13, 0, 0)) == 36


def test_deadline_crossing_national_day_and_its_levels(settings, rules):
    cal = WorkCalendar(settings)
    start = local(2025, 9, 30, 10, 0)
    due = add_duration(settings, start, 3, "working_days")
    assert due == local(2025, 10, 11, 18, 0)  # the 调休 Saturday is the third working day
    clock = Clock("urgent", "finish", start, due, moved_at=local(2025, 10, 11, 9, 0))
    two_thirds = evaluate(rules, clock, start, cal.add_working_hours).next_at
    assert two_thirds is not None and two_thirds == start + (due - start) * 2 / 3
    assert level(rules, cal, clock, two_thirds - MIN) == "none"
    assert level(rules, cal, clock, two_thirds + MIN) == "blue"
    assert level(rules, cal, clock, due - MIN) == "red"
    assert level(rules, cal, clock, due + MIN) == "overdue"


def test_bad_rules_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="colour"):
        rules_from({"levels": {"blue": [{"colour": 1}]}})
    with pytest.raises(ConfigError, match="used_fraction"):
        rules_from({"levels": {"blue": [{"used_fraction": "3/2"}]}})
    with pytest.raises(ConfigError, match="purple"):
        rules_from({"levels": {"purple": [{"used_fraction": 0.5}]}})
