"""Report periods in the calendar's time zone, and the refusals a user sees (pure code)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.report.model import _percentile
from services.report.period import PeriodError, current_month, current_week, parse_month, parse_week
from services.sla_monitor.domain.calendar import BusinessCalendar

BERLIN = BusinessCalendar()
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_a_week_is_monday_to_monday_local_time():
    week = parse_week("2026-W46", BERLIN, NOW)
    assert (week.start, week.end) == (datetime(2026, 11, 8, 23, 0, tzinfo=timezone.utc),
                                      datetime(2026, 11, 15, 23, 0, tzinfo=timezone.utc))
    assert week.first_day.isoformat() == "2026-11-09" and week.days == 7 and not week.in_progress(NOW)


def test_a_month_across_the_dst_switch_is_local_midnight_to_local_midnight():
    october = parse_month("2026-10", BERLIN, NOW)   # CEST (UTC+2) to CET (UTC+1) on Oct 25
    assert october.start == datetime(2026, 9, 30, 22, 0, tzinfo=timezone.utc)
    assert october.end == datetime(2026, 10, 31, 23, 0, tzinfo=timezone.utc)
    assert october.days == 31
    assert parse_month("2026-02", BERLIN, NOW).days == 28


def test_the_current_period_is_in_progress_and_the_next_is_refused():
    assert current_week(BERLIN, NOW) == "2026-W50" and current_month(BERLIN, NOW) == "2026-12"
    assert parse_week("2026-W50", BERLIN, NOW).in_progress(NOW)
    with pytest.raises(PeriodError, match="week 2026-W51 has not started yet"):
        parse_week("2026-W51", BERLIN, NOW)
    with pytest.raises(PeriodError, match="month 2027-01 has not started yet"):
        parse_month("2027-01", BERLIN, NOW)


@pytest.mark.parametrize("text, message", [
    ("2026-46", "is not an ISO week like 2026-W46"), ("2026-W5", "is not an ISO week"),
    ("2025-W53", r"does not exist \(year 2025 has 52 ISO weeks\)"), ("2026-W00", "does not exist"), ("W46", "is not an ISO week"),
])
def test_malformed_or_unknown_weeks(text, message):
    with pytest.raises(PeriodError, match=message):
        parse_week(text, BERLIN, NOW)


@pytest.mark.parametrize("text, message", [
    ("2026-13", "does not exist"), ("2026-00", "does not exist"), ("2026-1", "is not a month like 2026-11"),
    ("november", "is not a month"), ("1969-12", "does not exist"),
])
def test_malformed_or_unknown_months(text, message):
    with pytest.raises(PeriodError, match=message):
        parse_month(text, BERLIN, NOW)


def test_percentile_interpolates_between_ranks():
    assert _percentile([], 0.9) is None
    assert _percentile([5.0], 0.9) == 5.0
    assert _percentile([1800.0, 4800.0, 1800.0], 0.9) == pytest.approx(4200.0)
    assert _percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
