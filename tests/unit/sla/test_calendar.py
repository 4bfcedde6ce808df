"""Business calendars: contract §4's examples, weekends, holidays, DST and other time zones."""
from __future__ import annotations

from datetime import date, time, timedelta, timezone

import pytest

from services.sla_monitor.domain.calendar import DEFAULT_CALENDAR, BusinessCalendar

from .helpers import BERLIN, berlin, new_york

HOUR = timedelta(hours=1)
NY_CALENDAR = BusinessCalendar(timezone="America/New_York")


# --- contract §4: business time that starts outside business hours ------------------------

def test_mql_at_0800_is_due_at_1000():
    assert DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 2, 8, 0), HOUR) == berlin(2026, 11, 2, 10, 0)


def test_friday_1630_is_due_monday_0930():
    assert DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 6, 16, 30), HOUR) == berlin(2026, 11, 9, 9, 30)


def test_inside_business_hours_counts_at_once():
    assert DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 3, 10, 15), HOUR) == berlin(2026, 11, 3, 11, 15)


def test_ending_exactly_at_close_is_the_close_not_the_next_opening():
    assert DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 3, 16, 0), HOUR) == berlin(2026, 11, 3, 17, 0)


def test_friday_evening_and_weekend_count_from_monday_opening():
    assert DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 6, 23, 0), HOUR) == berlin(2026, 11, 9, 10, 0)
    assert DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 7, 12, 0), HOUR) == berlin(2026, 11, 9, 10, 0)


def test_durations_longer_than_a_day_span_business_days():
    # 9 hours from Monday 09:00: the whole Monday (8h) and one hour of Tuesday.
    assert DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 2, 9), timedelta(hours=9)) == berlin(2026, 11, 3, 10)


def test_zero_duration_returns_the_start():
    start = berlin(2026, 11, 7, 3, 0)
    assert DEFAULT_CALENDAR.add_business_time(start, timedelta(0)) == start


def test_negative_duration_is_refused():
    with pytest.raises(ValueError):
        DEFAULT_CALENDAR.add_business_time(berlin(2026, 11, 2, 9), -HOUR)


# --- contract §4: sales_acceptance "business close of the 2nd business day after the start day"

@pytest.mark.parametrize(
    ("assigned", "due"),
    [
        (berlin(2026, 11, 2, 10, 0), berlin(2026, 11, 4, 17, 0)),  # Monday 10:00 -> Wednesday
        (berlin(2026, 11, 2, 17, 30), berlin(2026, 11, 5, 17, 0)),  # Monday 17:30 -> Thursday
        (berlin(2026, 11, 7, 11, 0), berlin(2026, 11, 11, 17, 0)),  # Saturday -> Wednesday
        (berlin(2026, 11, 2, 7, 0), berlin(2026, 11, 4, 17, 0)),  # before opening: that day counts
        (berlin(2026, 11, 2, 17, 0), berlin(2026, 11, 5, 17, 0)),  # at close: not before close
        (berlin(2026, 11, 6, 16, 59), berlin(2026, 11, 10, 17, 0)),  # Friday -> Tuesday
    ],
)
def test_business_close_of_second_business_day(assigned, due):
    assert DEFAULT_CALENDAR.business_close_of_nth_business_day(assigned, 2) == due


def test_close_of_the_start_day_itself():
    assert DEFAULT_CALENDAR.business_close_of_nth_business_day(berlin(2026, 11, 7, 11), 0) == berlin(2026, 11, 9, 17)


# --- holidays -------------------------------------------------------------------------------

CHRISTMAS = BusinessCalendar(holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25)}))


def test_holiday_is_skipped_like_a_weekend():
    # Wednesday 23 Dec 16:30: half an hour that day, then Thu 24 and Fri 25 are holidays.
    assert CHRISTMAS.add_business_time(berlin(2026, 12, 23, 16, 30), HOUR) == berlin(2026, 12, 28, 9, 30)


def test_holiday_moves_the_sales_acceptance_close():
    # Tuesday 22 Dec: start day Tue, then Wed 23 (1st), Thu/Fri holidays, Mon 28 (2nd).
    assert CHRISTMAS.business_close_of_nth_business_day(berlin(2026, 12, 22, 10), 2) == berlin(2026, 12, 28, 17)


def test_assigned_on_a_holiday_starts_on_the_next_business_day():
    assert CHRISTMAS.business_close_of_nth_business_day(berlin(2026, 12, 24, 10), 2) == berlin(2026, 12, 30, 17)


# --- DST: Europe/Berlin switches to summer time on the last Sunday of March -----------------

def test_business_hours_stay_local_across_spring_forward():
    # Winter: 09:00 CET is 08:00 UTC; summer: 09:00 CEST is 07:00 UTC.
    friday = DEFAULT_CALENDAR.day_hours(date(2026, 3, 27))
    monday = DEFAULT_CALENDAR.day_hours(date(2026, 3, 30))
    assert friday is not None and monday is not None
    assert friday[0].astimezone(timezone.utc).time() == time(8, 0)
    assert monday[0].astimezone(timezone.utc).time() == time(7, 0)


def test_friday_before_spring_forward_is_due_monday_0930_summer_time():
    due = DEFAULT_CALENDAR.add_business_time(berlin(2026, 3, 27, 16, 30), HOUR)
    assert due == berlin(2026, 3, 30, 9, 30)
    assert due.astimezone(timezone.utc).hour == 7  # UTC offset +2 now


def test_friday_before_fall_back_is_due_monday_0930_winter_time():
    due = DEFAULT_CALENDAR.add_business_time(berlin(2026, 10, 23, 16, 30), HOUR)
    assert due == berlin(2026, 10, 26, 9, 30)
    assert due.astimezone(timezone.utc).hour == 8


def test_business_time_is_elapsed_time_on_a_23_hour_day():
    # A round-the-clock calendar: the spring-forward Sunday has only 23 hours to count.
    always = BusinessCalendar(working_days=frozenset(range(7)), opens=time(0), closes=time(0))
    start = berlin(2026, 3, 29, 0, 0)
    assert always.add_business_time(start, timedelta(hours=24)) == berlin(2026, 3, 30, 1, 0)
    assert always.business_time_between(berlin(2026, 10, 25), berlin(2026, 10, 26)) == timedelta(hours=25)


def test_wall_time_that_does_not_exist_opens_after_the_gap():
    # Opening at 02:30 on the spring-forward day: that wall time is skipped, it opens at 03:30.
    night = BusinessCalendar(working_days=frozenset(range(7)), opens=time(2, 30), closes=time(4, 0))
    opens, closes = night.day_hours(date(2026, 3, 29))
    assert opens.astimezone(BERLIN).time() == time(3, 30)
    assert closes - opens == timedelta(minutes=30)


# --- another time zone -------------------------------------------------------------------

def test_new_york_team_works_new_york_hours():
    assert NY_CALENDAR.add_business_time(new_york(2026, 11, 6, 16, 30), HOUR) == new_york(2026, 11, 9, 9, 30)
    # 16:30 in New York is 22:30 in Berlin: long after the Berlin close, still business time there.
    assert NY_CALENDAR.is_business_time(berlin(2026, 11, 5, 22, 30))
    assert not DEFAULT_CALENDAR.is_business_time(berlin(2026, 11, 5, 22, 30))


def test_new_york_switches_to_summer_time_before_berlin():
    # 9 March 2026: New York already on EDT (UTC-4), Berlin still on CET (UTC+1).
    hours = NY_CALENDAR.day_hours(date(2026, 3, 9))
    assert hours is not None
    assert hours[0].astimezone(timezone.utc).time() == time(13, 0)
    assert NY_CALENDAR.day_hours(date(2026, 3, 6))[0].astimezone(timezone.utc).time() == time(14, 0)


# --- the small queries ------------------------------------------------------------------------

def test_is_business_time_bounds():
    assert DEFAULT_CALENDAR.is_business_time(berlin(2026, 11, 2, 9, 0))
    assert DEFAULT_CALENDAR.is_business_time(berlin(2026, 11, 2, 16, 59, 59))
    assert not DEFAULT_CALENDAR.is_business_time(berlin(2026, 11, 2, 17, 0))
    assert not DEFAULT_CALENDAR.is_business_time(berlin(2026, 11, 7, 12, 0))


def test_next_opening():
    assert DEFAULT_CALENDAR.next_opening(berlin(2026, 11, 2, 10)) == berlin(2026, 11, 2, 10)
    assert DEFAULT_CALENDAR.next_opening(berlin(2026, 11, 2, 17)) == berlin(2026, 11, 3, 9)
    assert DEFAULT_CALENDAR.next_opening(berlin(2026, 11, 6, 20)) == berlin(2026, 11, 9, 9)


def test_business_time_between():
    assert DEFAULT_CALENDAR.business_time_between(berlin(2026, 11, 6, 16), berlin(2026, 11, 9, 10)) == 2 * HOUR
    assert DEFAULT_CALENDAR.business_time_between(berlin(2026, 11, 9, 10), berlin(2026, 11, 6, 16)) == timedelta(0)


def test_calendar_rejects_nonsense():
    with pytest.raises(ValueError):
        BusinessCalendar(working_days=frozenset())
    with pytest.raises(ValueError):
        BusinessCalendar(opens=time(17), closes=time(9))
