"""SLA deadlines against the real 2025/2026 State Council calendars, and §13 warning levels.

chinese-calendar 1.11 covers 2004-2026; later years use the documented Mon-Fri fallback plus the
extra_holidays/extra_workdays overrides in sla.yaml.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from config.settings import DEFAULTS_DIR, Settings
from ticketing.errors import InvalidInput
from ticketing.sla import add_duration, deadline_for, is_working_day, warning_for

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def settings(tmp_path) -> Settings:  # no DB or Redis needed here
    return Settings(data_dir=tmp_path)


def local(*args) -> datetime:
    """Shanghai wall-clock time → naive UTC (the storage convention)."""
    return datetime(*args, tzinfo=SH).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


@pytest.mark.parametrize(
    "start, days, expected",
    [
        # National Day 2025: Oct 1-8 off, Sun Sep 28 and Sat Oct 11 are make-up workdays
        (local(2025, 9, 30, 10, 0), 1, local(2025, 10, 9, 18, 0)),
        (local(2025, 9, 30, 10, 0), 3, local(2025, 10, 11, 18, 0)),  # 调休 Saturday counts
        (local(2025, 10, 3, 11, 0), 1, local(2025, 10, 9, 18, 0)),  # accepted on a holiday
        (local(2025, 9, 26, 20, 0), 1, local(2025, 9, 28, 18, 0)),  # Fri evening → make-up Sun
        # Spring Festival 2026: Feb 15-23 off, Sat Feb 14 and Sat Feb 28 are workdays
        (local(2026, 2, 13, 9, 0), 1, local(2026, 2, 14, 18, 0)),
        (local(2026, 2, 13, 9, 0), 2, local(2026, 2, 24, 18, 0)),
        (local(2026, 2, 13, 9, 0), 5, local(2026, 2, 27, 18, 0)),
        (local(2026, 2, 13, 9, 0), 6, local(2026, 2, 28, 18, 0)),  # Sat Feb 28 is a workday
        (local(2026, 2, 16, 10, 0), 3, local(2026, 2, 26, 18, 0)),
        # New Year 2026: Jan 1-3 off, Sun Jan 4 is a workday
        (local(2025, 12, 31, 15, 0), 1, local(2026, 1, 4, 18, 0)),
        # an ordinary week: the acceptance day is not counted, whatever the hour
        (local(2026, 11, 23, 9, 0), 1, local(2026, 11, 24, 18, 0)),
        (local(2026, 11, 23, 20, 0), 1, local(2026, 11, 24, 18, 0)),
        (local(2026, 11, 21, 10, 0), 1, local(2026, 11, 23, 18, 0)),  # Saturday → Monday
        (local(2026, 11, 23, 9, 0), 5, local(2026, 11, 30, 18, 0)),
        # 00:30 Monday local is still Sunday in UTC: the local day decides
        (local(2026, 11, 23, 0, 30), 1, local(2026, 11, 24, 18, 0)),
    ],
)
def test_working_days(settings, start, days, expected):
    assert add_duration(settings, start, days, "working_days") == expected


def test_calendar_facts(settings):
    from datetime import date

    assert is_working_day(settings, date(2025, 10, 11))  # Saturday, make-up workday
    assert not is_working_day(settings, date(2025, 10, 6))  # Monday, Mid-autumn/National Day
    assert is_working_day(settings, date(2026, 2, 28))
    assert not is_working_day(settings, date(2026, 2, 23))


def test_aware_input_gives_the_same_deadline(settings):
    naive = local(2026, 2, 13, 9, 0)
    aware = datetime(2026, 2, 13, 9, 0, tzinfo=SH)
    assert add_duration(settings, aware, 2, "working_days") == add_duration(
        settings, naive, 2, "working_days"
    )


def test_hours_run_on_the_clock(settings):
    start = local(2025, 10, 1, 9, 0)  # a holiday: critical matters do not wait
    assert add_duration(settings, start, 24, "hours") == start + timedelta(hours=24)
    deadline, basis = deadline_for(settings, "enterprise", "critical", start)
    assert (deadline, basis) == (start + timedelta(hours=24), "24 hours")
    deadline, basis = deadline_for(settings, "complaint", "critical", start)
    assert (deadline, basis) == (start + timedelta(hours=12), "12 hours")


def test_deadline_for_reads_the_policy(settings):
    start = local(2026, 11, 23, 9, 0)
    assert deadline_for(settings, "enterprise", "general", start) == (
        local(2026, 11, 30, 18, 0),
        "5 working_days",
    )
    assert deadline_for(settings, "complaint", "urgent", start) == (
        local(2026, 11, 24, 18, 0),
        "1 working_days",
    )


def test_years_beyond_the_library_fall_back_and_can_be_corrected(tmp_path):
    start = local(2026, 12, 31, 10, 0)
    plain = Settings(data_dir=tmp_path)
    # 2027 is not in chinese-calendar 1.11: Mon-Fri fallback makes Fri Jan 1 a workday
    assert add_duration(plain, start, 1, "working_days") == local(2027, 1, 1, 18, 0)
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    sla = yaml.safe_load((DEFAULTS_DIR / "sla.yaml").read_text(encoding="utf-8"))
    sla["extra_holidays"] = ["2027-01-01"]
    sla["extra_workdays"] = ["2027-01-09"]  # a hypothetical make-up Saturday
    (cfg_dir / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), encoding="utf-8")
    corrected = Settings(data_dir=tmp_path, config_dir=cfg_dir)
    assert add_duration(corrected, start, 1, "working_days") == local(2027, 1, 4, 18, 0)
    assert add_duration(corrected, local(2027, 1, 8, 10, 0), 1, "working_days") == local(
        2027, 1, 9, 18, 0
    )


@pytest.mark.parametrize(
    "amount, unit",
    [(5, "weeks"), (0, "hours"), (-1, "working_days"), (1.5, "working_days"), ("3", "hours")],
)
def test_bad_durations(settings, amount, unit):
    with pytest.raises(InvalidInput):
        add_duration(settings, local(2026, 11, 23, 9, 0), amount, unit)


def test_unknown_policy(settings):
    with pytest.raises(InvalidInput):
        deadline_for(settings, "nonsense", "general", local(2026, 11, 23, 9, 0))


START = datetime(2026, 11, 23, 0, 0)
DEADLINE = START + timedelta(hours=100)


def at(fraction: float) -> datetime:
    return START + timedelta(hours=100 * fraction)


@pytest.mark.parametrize(
    "urgency, fraction, level",
    [
        ("general", 0.5, "none"),
        ("general", 0.66, "none"),
        ("general", 0.67, "blue"),
        ("general", 0.95, "blue"),  # yellow/red are for urgent/critical matters only
        ("urgent", 0.7, "blue"),
        ("urgent", 0.8, "yellow"),
        ("urgent", 0.99, "yellow"),
        ("critical", 0.7, "blue"),
        ("critical", 0.85, "yellow"),
        ("critical", 0.9, "red"),
        ("general", 1.0, "blue"),  # at the deadline, not yet past it
        ("general", 1.01, "red"),  # anything overdue is red
        ("urgent", 3.0, "red"),
        ("general", -0.5, "none"),  # clock skew: before the start
    ],
)
def test_warning_levels(settings, urgency, fraction, level):
    assert warning_for(settings, urgency, START, DEADLINE, at(fraction)) == level


def test_warning_without_deadline_and_aware_now(settings):
    assert warning_for(settings, "critical", START, None, at(5)) == "none"
    aware_now = at(0.95).replace(tzinfo=ZoneInfo("UTC")).astimezone(SH)
    assert warning_for(settings, "critical", START, DEADLINE, aware_now) == "red"
