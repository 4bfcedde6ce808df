"""Volume SLAs: consecutive periods (ISO weeks, calendar months) in a calendar's time zone, the
assignments counted in each, and judging each period once the clock time reaches its end.

Contract v2 §4: a window's final outcome depends only on the assignments whose event time falls
in it, never on when they were processed. So:
- every assignment is counted in the period of its `occurred_at`, whenever it arrives; one that
  falls in a period already judged makes the engine judge that window again;
- a series judges the periods that start at or after the earliest event time seen
  (`eligible_from`), and only once the clock time reaches their end. An event older than every
  event before it moves `eligible_from` back; the periods it opens up are judged as soon as the
  clock time is past their end (`begin` returns those judged at once). So the judged set depends
  on the events and the clock time, not on the order the events came in.
- `cursor` is the start of the first eligible period not judged yet: every eligible period
  before it is judged.

Windows are kept after they are judged (a late lead may still change them) until the policy's
correction window, if any, has passed their end (`expire`).
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
        self.eligible_from: datetime | None = None  # start of the first period that is ever judged
        self.cursor: datetime | None = None  # start of the first eligible period not yet judged
        self.cursor_end: datetime | None = None
        # period start -> owner ("" for weekly) -> window, counted or judged
        self.windows: dict[datetime, dict[str, Window]] = {}

    def period_of(self, at: datetime) -> tuple[datetime, datetime]:
        return self._period_of(self.calendar, at)

    def first_eligible(self, earliest: datetime) -> datetime:
        """The first period that starts at or after the earliest event time seen (contract §4)."""
        start, end = self.period_of(earliest)
        return start if start == earliest else end

    def is_judged(self, start: datetime) -> bool:
        """Whether the period starting at `start` has been judged (a count there re-judges it)."""
        return (self.eligible_from is not None and self.cursor is not None
                and self.eligible_from <= start < self.cursor)

    def begin(self, earliest: datetime) -> list[Window]:
        """The earliest event time seen is now `earliest`. Returns the windows this judges at once:
        periods it makes eligible that end before the first period still waiting (the clock time
        already passed them)."""
        eligible = self.first_eligible(earliest)
        if self.eligible_from is None or self.cursor is None:
            self.eligible_from = eligible
            self.set_cursor(eligible)
            return []
        if eligible >= self.eligible_from:
            return []
        old_eligible, self.eligible_from = self.eligible_from, eligible
        if self.cursor == old_eligible:  # nothing judged yet: start judging earlier
            self.set_cursor(eligible)
            return []
        # Periods after the gap were judged, so the clock time passed the gap's end too.
        judged: list[Window] = []
        start = eligible
        while start < old_eligible:
            end = self.period_of(start)[1]
            judged += self._judge_period(start, end)
            start = end
        return judged

    def set_cursor(self, start: datetime) -> None:
        self.cursor = start
        self.cursor_end = self.period_of(start)[1]

    def count(self, at: datetime, lead_id: str, owner: str | None, fit: str | None,
              settings: SlaSettings) -> Window | None:
        """Count one assignment at event time `at` in its period, judged or not; the window it
        changed, or None (the lead was counted there already, or a month without an owner)."""
        if not self.weekly and owner is None:
            return None
        start, end = self.period_of(at)
        owners = self.windows.setdefault(start, {})
        owner_key = "" if self.weekly else owner
        window = owners.get(owner_key)  # type: ignore[arg-type]
        if window is None:
            window = self._new_window(start, end, None if self.weekly else owner, settings)
            owners[owner_key] = window  # type: ignore[index]
        return window if window.count_lead(lead_id, fit) else None

    def due_windows(self, now: datetime) -> Iterator[Window]:
        """The windows of every not yet judged period whose end is at or before `now`, in order
        (each yielded once, unjudged: the caller judges it)."""
        while self.cursor_end is not None and self.cursor_end <= now:
            start, end = self.cursor, self.cursor_end
            assert start is not None
            yield from self._judge_period(start, end)
            self.set_cursor(end)

    def expire(self, before: datetime) -> list[Window]:
        """Forget the windows that ended before `before` (the policy's correction window passed),
        judged or never eligible: marked expired and returned so the caller can persist them as
        final."""
        gone: list[Window] = []
        for start in list(self.windows):
            owners = self.windows[start]
            if owners and next(iter(owners.values())).window_end < before:
                for window in owners.values():
                    window.expired = True
                    gone.append(window)
                del self.windows[start]
        return gone

    def _judge_period(self, start: datetime, end: datetime) -> list[Window]:
        owners = self.windows.get(start)
        if self.weekly and not owners:
            owners = self.windows[start] = {"": self._new_window(start, end, None, self.rule.settings)}
        return [owners[owner] for owner in sorted(owners)] if owners else []

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
