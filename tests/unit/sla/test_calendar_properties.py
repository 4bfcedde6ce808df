"""Properties of business-time arithmetic, over several calendars and DST years."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla_monitor.domain.calendar import DEFAULT_CALENDAR, BusinessCalendar

CALENDARS = [
    DEFAULT_CALENDAR,
    BusinessCalendar(timezone="America/New_York", opens=time(8, 30), closes=time(18, 0)),
    BusinessCalendar(timezone="Asia/Kolkata", working_days=frozenset({0, 1, 2, 3, 5})),
    BusinessCalendar(holidays=frozenset({date(2026, 3, 30), date(2026, 12, 24), date(2026, 12, 25)})),
    # Round the clock on weekends only: every DST switch falls inside business hours.
    BusinessCalendar(timezone="Europe/Berlin", working_days=frozenset({5, 6}), opens=time(0), closes=time(0)),
]

calendars = st.sampled_from(CALENDARS)
moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(timezone.utc)
)
durations = st.integers(min_value=0, max_value=60 * 60 * 24 * 10).map(lambda s: timedelta(seconds=s))


@given(calendars, moments, durations)
@settings(max_examples=300, deadline=None)
def test_adding_business_time_never_goes_back(calendar, start, duration):
    assert calendar.add_business_time(start, duration) >= start


@given(calendars, moments, durations, durations)
@settings(max_examples=300, deadline=None)
def test_adding_a_then_b_equals_adding_a_plus_b(calendar, start, a, b):
    assert calendar.add_business_time(calendar.add_business_time(start, a), b) == calendar.add_business_time(
        start, a + b
    )


@given(calendars, moments, durations)
@settings(max_examples=300, deadline=None)
def test_business_time_between_start_and_result_is_the_duration(calendar, start, duration):
    end = calendar.add_business_time(start, duration)
    assert calendar.business_time_between(start, end) == duration


@given(calendars, moments, durations.filter(lambda d: d > timedelta(0)))
@settings(max_examples=300, deadline=None)
def test_a_positive_duration_ends_in_business_hours_or_at_a_close(calendar, start, duration):
    end = calendar.add_business_time(start, duration)
    just_before = end - timedelta(microseconds=1)
    assert calendar.is_business_time(just_before)


@given(calendars, moments, st.integers(min_value=0, max_value=5))
@settings(max_examples=200, deadline=None)
def test_close_of_nth_business_day_is_a_closing_after_the_start(calendar, start, n):
    close = calendar.business_close_of_nth_business_day(start, n)
    assert close > start
    assert calendar.is_business_time(close - timedelta(microseconds=1))
    assert calendar.business_close_of_nth_business_day(start, n + 1) > close
