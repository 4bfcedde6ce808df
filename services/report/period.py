"""The period a report covers: an ISO week (`2026-W46`) or a calendar month (`2026-11`), in the
time zone of the calendar the volume SLAs are counted in. Pure: "now" is passed in."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.sla_monitor.domain.calendar import BusinessCalendar
from services.sla_monitor.domain.windows import month_of, week_of

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class PeriodError(ValueError):
    """A week or month that cannot be reported on; the message says why, in one line."""


@dataclass(frozen=True)
class Period:
    kind: str                 # "week" or "month"
    label: str                # "2026-W46" / "2026-11"
    first_day: date           # local date of the first day
    days: int                 # local days in the period
    start: datetime           # UTC, inclusive
    end: datetime             # UTC, exclusive

    def day_list(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range(self.days)]

    def in_progress(self, now: datetime) -> bool:
        return self.start <= now < self.end


def parse_week(text: str, calendar: BusinessCalendar, now: datetime) -> Period:
    match = _WEEK.match(text.strip())
    if match is None:
        raise PeriodError(f"week {text!r} is not an ISO week like 2026-W46")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise PeriodError(f"week {text!r} does not exist (year {year} has "
                          f"{date(year, 12, 28).isocalendar().week} ISO weeks)") from None
    start, end = week_of(calendar, _noon(calendar, monday))
    return _checked(Period("week", f"{year}-W{week:02d}", monday, 7, start, end), now)


def parse_month(text: str, calendar: BusinessCalendar, now: datetime) -> Period:
    match = _MONTH.match(text.strip())
    if match is None:
        raise PeriodError(f"month {text!r} is not a month like 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 1970:
        raise PeriodError(f"month {text!r} does not exist")
    first = date(year, month, 1)
    start, end = month_of(calendar, _noon(calendar, first))
    following = date(year + month // 12, month % 12 + 1, 1)
    return _checked(Period("month", f"{year}-{month:02d}", first, (following - first).days, start, end), now)


def current_week(calendar: BusinessCalendar, now: datetime) -> str:
    year, week, _ = calendar.local_date(now).isocalendar()
    return f"{year}-W{week:02d}"


def current_month(calendar: BusinessCalendar, now: datetime) -> str:
    return calendar.local_date(now).strftime("%Y-%m")


def _noon(calendar: BusinessCalendar, day: date) -> datetime:
    from datetime import time, timezone

    return datetime.combine(day, time(12), tzinfo=calendar.zone).astimezone(timezone.utc)


def _checked(period: Period, now: datetime) -> Period:
    if period.start > now:
        raise PeriodError(f"{period.kind} {period.label} has not started yet (it starts "
                          f"{period.first_day.isoformat()}); pick a past or the current {period.kind}")
    return period
