"""The company's working week (Europe/Berlin, Monday-Friday 09:00-17:00), for when people act.

The simulator's own small arithmetic: it decides when a rep picks up the phone, so it must not
borrow the SLA engine's calendar (that is what the simulated month is measured with)."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
OPENS, CLOSES = time(9), time(17)


def is_business(t: datetime) -> bool:
    local = t.astimezone(BERLIN)
    return local.weekday() < 5 and OPENS <= local.time() < CLOSES


def next_opening(t: datetime) -> datetime:
    """t itself inside business hours, else the next opening (UTC)."""
    if is_business(t):
        return t
    local = t.astimezone(BERLIN)
    day = local.date() if local.time() < OPENS else local.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, OPENS, tzinfo=BERLIN).astimezone(timezone.utc)


def add_business_minutes(t: datetime, minutes: float) -> datetime:
    """The moment `minutes` of business time after t (counting starts at the next opening)."""
    at = next_opening(t)
    left = timedelta(minutes=minutes)
    while True:
        local = at.astimezone(BERLIN)
        close = datetime.combine(local.date(), CLOSES, tzinfo=BERLIN).astimezone(timezone.utc)
        if at + left < close:
            return at + left
        left -= close - at
        at = next_opening(close)


def berlin_midnight(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=BERLIN).astimezone(timezone.utc)
