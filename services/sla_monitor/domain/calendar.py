"""Business calendars: when a team works, and business-time arithmetic over it.

Business hours are wall-clock times in the calendar's time zone; business time is real elapsed
time inside them. Each business day is turned into one UTC interval [opens, closes), so DST
switches are handled by zoneinfo once per day and all arithmetic after that is plain UTC.
A wall time that does not exist on a spring-forward day resolves forward (fold=0: the pre-switch
offset), an ambiguous one on a fall-back day to its first occurrence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ONE_DAY = timedelta(days=1)
# A calendar with working days always has an opening within a week, holidays aside; this bounds
# every search loop so a calendar made only of holidays cannot hang the caller.
_MAX_SEARCH_DAYS = 366 * 20


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """`working_days` are ISO-less weekday numbers (Monday 0 .. Sunday 6), `opens` < `closes`
    (`closes` may be `time(0)` meaning midnight at the end of the day)."""

    timezone: str = "Europe/Berlin"
    working_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    opens: time = time(9, 0)
    closes: time = time(17, 0)
    holidays: frozenset[date] = frozenset()
    zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.working_days:
            raise ValueError("a calendar needs at least one working day")
        if not self.working_days <= set(range(7)):
            raise ValueError("working days are numbers 0 (Monday) to 6 (Sunday)")
        if self.closes != time(0) and self.closes <= self.opens:
            raise ValueError("business hours must close after they open")
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))

    # --- days -------------------------------------------------------------------------------

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.working_days and day not in self.holidays

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def day_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC interval [opens, closes) of `day` (a local date), or None if not a business day."""
        return _day_hours(self, day)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """Local midnight to the next local midnight of `day`, in UTC (23, 24 or 25 hours long)."""
        start = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(timezone.utc)
        end = datetime.combine(day + _ONE_DAY, time(0), tzinfo=self.zone).astimezone(timezone.utc)
        return start, end

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`."""
        for _ in range(_MAX_SEARCH_DAYS):
            day += _ONE_DAY
            if self.is_business_day(day):
                return day
        raise ValueError("the calendar has no business day within 20 years")

    # --- instants ---------------------------------------------------------------------------

    def is_business_time(self, moment: datetime) -> bool:
        hours = self.day_hours(self.local_date(moment))
        return hours is not None and hours[0] <= moment < hours[1]

    def next_opening(self, moment: datetime) -> datetime:
        """The first instant at or after `moment` that is business time (`moment` itself if open)."""
        return self._intervals_from(moment).__next__()[0]

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which `duration` of business time has passed since `start`.

        Time outside business hours does not count, so counting begins at the next opening; a
        zero duration returns `start` unchanged. The result of a positive duration that ends
        exactly at a closing is that closing (not the next opening), which makes
        add(add(s, a), b) == add(s, a + b).
        """
        if duration < timedelta(0):
            raise ValueError("business time cannot be added backwards")
        if duration == timedelta(0):
            return start
        remaining = duration
        for begin, end in self._intervals_from(start):
            available = end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals_from is endless or raises")

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Business time inside [start, end); zero when end <= start."""
        total = timedelta(0)
        if end <= start:
            return total
        for begin, close in self._intervals_from(start):
            if begin >= end:
                return total
            total += min(close, end) - begin
        raise AssertionError("unreachable")

    def business_close_of_nth_business_day(self, start: datetime, n: int) -> datetime:
        """Closing time of the n-th business day after the start day.

        The start day is the local day of `start` if that is a business day and `start` is
        before its close; otherwise the next business day (contract §4, sales_acceptance).
        n = 0 is the close of the start day itself.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        day = self.local_date(start)
        hours = self.day_hours(day)
        if hours is None or start >= hours[1]:
            day = self.next_business_day(day)
        for _ in range(n):
            day = self.next_business_day(day)
        hours = self.day_hours(day)
        assert hours is not None
        return hours[1]

    def _intervals_from(self, moment: datetime):
        """Business intervals in order, the first clipped to begin at `moment`."""
        day = self.local_date(moment)
        for _ in range(_MAX_SEARCH_DAYS):
            hours = self.day_hours(day)
            if hours is not None and hours[1] > moment:
                yield (max(hours[0], moment), hours[1])
            day += _ONE_DAY
        raise ValueError("the calendar has no business hours within 20 years")


@lru_cache(maxsize=65536)
def _day_hours(calendar: BusinessCalendar, day: date) -> tuple[datetime, datetime] | None:
    # Cached: SLA due times hit the same few days again and again, and zoneinfo is not free.
    if not calendar.is_business_day(day):
        return None
    opens = datetime.combine(day, calendar.opens, tzinfo=calendar.zone).astimezone(timezone.utc)
    if calendar.closes == time(0):
        close_day, close_time = day + _ONE_DAY, time(0)
    else:
        close_day, close_time = day, calendar.closes
    closes = datetime.combine(close_day, close_time, tzinfo=calendar.zone).astimezone(timezone.utc)
    return opens, closes


DEFAULT_CALENDAR = BusinessCalendar()
