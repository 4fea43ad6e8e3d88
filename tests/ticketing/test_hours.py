"""Business hours: weekdays, weekends, statutory holidays, 调休 make-up workdays, next opening."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from config.loader import ConfigError
from config.settings import Settings
from ticketing.hours import BusinessHours, format_opening, load_business_hours

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def hours() -> BusinessHours:
    return load_business_hours(Settings())


def at(y, m, d, hh, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def test_weekday_inside_and_outside_hours(hours):
    assert hours.is_open(at(2026, 11, 25, 10))  # Wednesday
    assert hours.is_open(at(2026, 11, 25, 8, 30))  # opening minute is open
    assert not hours.is_open(at(2026, 11, 25, 17, 30))  # closing minute is closed
    assert not hours.is_open(at(2026, 11, 25, 7, 59))


def test_naive_datetimes_are_utc(hours):
    # 02:00 UTC = 10:00 Shanghai (open); 12:00 UTC = 20:00 Shanghai (closed)
    assert hours.is_open(datetime(2026, 11, 25, 2, 0))
    assert not hours.is_open(datetime(2026, 11, 25, 12, 0))
    assert hours.is_open(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))


def test_weekend_closed(hours):
    assert not hours.is_open(at(2026, 11, 28, 10))  # Saturday


def test_statutory_holiday_closed_on_a_weekday(hours):
    assert date(2026, 10, 1).weekday() < 5
    assert not hours.is_open(at(2026, 10, 1, 10))  # National Day, a Thursday


def test_make_up_workday_open_on_a_weekend(hours):
    # 2026-10-10 is a Saturday declared a working day (调休)
    assert date(2026, 10, 10).weekday() == 5
    assert hours.is_open(at(2026, 10, 10, 10))
    assert hours.is_open(at(2026, 9, 20, 9))  # Sunday make-up day


def test_next_opening_after_hours_same_night(hours):
    assert hours.next_opening(at(2026, 11, 25, 20)) == at(2026, 11, 26, 8, 30)


def test_next_opening_early_morning_same_day(hours):
    assert hours.next_opening(at(2026, 11, 25, 6)) == at(2026, 11, 25, 8, 30)


def test_next_opening_skips_weekend(hours):
    assert hours.next_opening(at(2026, 11, 27, 18)) == at(2026, 11, 30, 8, 30)  # Fri -> Mon


def test_next_opening_skips_golden_week_to_make_up_day(hours):
    # closed 1-7 Oct 2026 (+ 8th), Sat 10 Oct is a make-up workday? the calendar says which
    when = hours.next_opening(at(2026, 9, 30, 18))
    assert when.date() > date(2026, 10, 7)
    assert hours.is_workday(when.date())
    assert hours.is_open(when)


def test_next_opening_when_open_is_now(hours):
    now = at(2026, 11, 25, 10)
    assert hours.next_opening(now) == now


def test_lunch_break_and_local_exceptions():
    h = BusinessHours.from_dict(
        {
            "timezone": "Asia/Shanghai",
            "periods": [["08:30", "12:00"], ["14:30", "17:30"]],
            "closed_dates": ["2026-11-26"],
            "open_dates": ["2026-11-28"],
        }
    )
    assert not h.is_open(at(2026, 11, 25, 13))
    assert h.next_opening(at(2026, 11, 25, 13)) == at(2026, 11, 25, 14, 30)
    assert not h.is_open(at(2026, 11, 26, 10))  # local closure
    assert h.next_opening(at(2026, 11, 25, 18)) == at(2026, 11, 27, 8, 30)
    assert h.is_open(at(2026, 11, 28, 10))  # local service Saturday


def test_year_without_calendar_data_falls_back_to_weekdays(hours):
    assert hours.is_workday(date(2099, 1, 5))  # Monday
    assert not hours.is_workday(date(2099, 1, 4))  # Sunday


@pytest.mark.parametrize(
    "bad",
    [
        {"periods": []},
        {"periods": [["17:00", "09:00"]]},
        {"periods": [["8h", "9h"]]},
        {"periods": [["08:00", "09:00"]], "timezone": "Mars/Olympus"},
        {"periods": [["08:00", "09:00"]], "closed_dates": ["2026-13-01"]},
    ],
)
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match=r"business_hours\.yaml"):
        BusinessHours.from_dict(bad)


def test_format_opening():
    assert format_opening(at(2026, 11, 26, 8, 30)) == "11月26日（星期四）08:30"


def test_module_shortcuts_use_the_configured_calendar():
    from ticketing.hours import is_open, is_working_time, next_opening

    s = Settings()
    assert is_open(at(2026, 11, 25, 10), s) and is_working_time(at(2026, 11, 25, 10), s)
    assert next_opening(at(2026, 10, 1, 10), s).date() > date(2026, 10, 7)
