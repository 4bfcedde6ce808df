"""RFC 3339 parsing and the UTC formats the contract prints."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# RFC 3339 date-time: the offset is mandatory ("Z" or +hh:mm); "T" may be lower case or a space.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with offset into an aware UTC datetime.

    Raises ValueError naming what is wrong.
    """
    m = _RFC3339.fullmatch(text)  # fullmatch: no trailing newline
    if m is None:
        raise ValueError("must be an RFC 3339 timestamp with offset, e.g. 2026-11-02T08:00:00Z")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    if offset in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if offset[0] == "+" else -1
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise ValueError("has an offset out of range")
        tz = timezone(sign * timedelta(hours=oh, minutes=om))
    try:
        # RFC 3339 allows second 60 (leap second); Python does not, and no SLA needs it.
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"is not a valid date-time ({exc})") from None
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("is out of the representable range once converted to UTC") from None


def format_utc(dt: datetime) -> str:
    """The contract's output format: YYYY-MM-DDTHH:MM:SSZ (seconds, UTC)."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_utc_precise(dt: datetime) -> str:
    """UTC with microseconds when present; used for normalised envelopes so nothing is lost."""
    dt = dt.astimezone(timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_text(seconds: float | None) -> str:
    """`3d 4h`, `2h 05m`, `12m 30s`, `45s`; negative (events out of time order) keeps its sign."""
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else ""
    s = int(round(abs(seconds)))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {s:02d}s"
    return f"{sign}{s}s"
