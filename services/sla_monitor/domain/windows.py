"""Volume SLAs: consecutive periods (ISO weeks, calendar months) in a calendar's time zone, the
assignments counted in each, and judging each period once the clock time reaches its end.

A series judges only periods that start at or after the first event the engine saw (contract
§4), in order, through `cursor` (the start of the first period not yet judged). An assignment
whose event time falls in a period already judged, or before the cursor, is not counted: a
judged window is final.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

from services.sla_monitor.domain.calendar import BusinessCalendar
from services.sla_monitor.domain.clocks import Window
from services.sla_monitor.domain.policy import MARKETING_WEEKLY_VOLUME, SlaRule, SlaSettings


def _local_midnight(calendar: BusinessCalendar, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=calendar.zone).astimezone(timezone.utc)


def week_of(calendar: BusinessCalendar, at: datetime) -> tuple[datetime, datetime]:
    """The ISO week (Monday 00:00 to Monday 00:00, local) containing `at`, in UTC."""
    day = calendar.local_date(at)
    monday = day - timedelta(days=day.weekday())
    return _local_midnight(calendar, monday), _local_midnight(calendar, monday + timedelta(days=7))


def month_of(calendar: BusinessCalendar, at: datetime) -> tuple[datetime, datetime]:
    """The calendar month (1st 00:00 to 1st 00:00, local) containing `at`, in UTC."""
    day = calendar.local_date(at)
    first = day.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return _local_midnight(calendar, first), _local_midnight(calendar, following)


class WindowSeries:
    """The windows of one volume SLA: weekly (one window per period) or monthly per owner."""

    def __init__(self, rule: SlaRule, calendar: BusinessCalendar, policy_version: str) -> None:
        self.rule = rule
        self.calendar = calendar
        self.policy_version = policy_version
        self.weekly = rule.kind == MARKETING_WEEKLY_VOLUME
        self._period_of = week_of if self.weekly else month_of
        self.cursor: datetime | None = None  # start of the first period not yet judged
        self.cursor_end: datetime | None = None
        # period start -> owner ("" for weekly) -> window being counted
        self.pending: dict[datetime, dict[str, Window]] = {}

    def period_of(self, at: datetime) -> tuple[datetime, datetime]:
        return self._period_of(self.calendar, at)

    def begin(self, first_seen_at: datetime) -> None:
        """Start judging with the first period that starts at or after the first event."""
        start, end = self.period_of(first_seen_at)
        self.set_cursor(start if start == first_seen_at else end)

    def set_cursor(self, start: datetime) -> None:
        self.cursor = start
        self.cursor_end = self.period_of(start)[1]

    def count(self, at: datetime, lead_id: str, owner: str | None, fit: str | None,
              settings: SlaSettings) -> Window | None:
        """Count one assignment at event time `at`; the window it changed, or None."""
        if self.cursor is None or at < self.cursor:
            return None
        if not self.weekly and owner is None:
            return None
        start, end = self.period_of(at)
        owners = self.pending.setdefault(start, {})
        owner_key = "" if self.weekly else owner
        window = owners.get(owner_key)  # type: ignore[arg-type]
        if window is None:
            window = self._new_window(start, end, None if self.weekly else owner, settings)
            owners[owner_key] = window  # type: ignore[index]
        return window if window.count_lead(lead_id, fit) else None

    def due_windows(self, now: datetime) -> Iterator[Window]:
        """Judge, in order, every period whose end is at or before `now`; yields the windows."""
        while self.cursor_end is not None and self.cursor_end <= now:
            start, end = self.cursor, self.cursor_end
            assert start is not None
            owners = self.pending.pop(start, {})
            if self.weekly and not owners:
                owners = {"": self._new_window(start, end, None, self.rule.settings)}
            for owner in sorted(owners):
                window = owners[owner]
                window.judge(now)
                yield window
            self.set_cursor(end)

    def _new_window(self, start: datetime, end: datetime, owner: str | None, settings: SlaSettings) -> Window:
        return Window(
            sla=self.rule.name,
            kind=self.rule.kind,
            owner=owner,
            window_start=start,
            window_end=end,
            target=settings.target,
            policy_version=self.policy_version,
            min_fit_share=settings.min_fit_share if self.weekly else None,
            fit=settings.fit if self.weekly else None,
        )
