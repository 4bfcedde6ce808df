"""Volume SLAs: consecutive periods (days, ISO weeks, calendar months, or one fixed span) in a
calendar's time zone, the distinct leads counted in each (one count, or per owner or team), the
pace checkpoints inside a period, and judging each window once the clock time reaches its end.

Contract v2 §4: a window's final outcome depends only on the counted events whose event time
falls in it, never on when they were processed. So:
- every counted event is counted in the period of its `occurred_at`, whenever it arrives; one
  that falls in a window already judged makes the engine judge that window again;
- a series judges the periods that start at or after the earliest event time seen
  (`eligible_from`), and only once the clock time reaches their end. An event older than every
  event before it moves `eligible_from` back; the periods it opens up are judged as soon as the
  clock time is past their end (`begin` returns them). So what is judged depends on the events
  and the clock time, not on the order the events came in.
- `cursor` is the start of the first eligible period not judged yet; `clock` the latest clock
  time judged up to. A window is due (judged, or to be judged at once) when its period is
  eligible and its end is at or before `clock`.

A pace checkpoint is a window of its own: from the period's start to the end of its business
day, with that day's share of the target (`pace = "even"`: day k of n business days has k/n).

Windows are kept after they are judged (a late lead may still change them) until the policy's
correction window, if any, has passed their end (`expire`).
"""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator, Mapping

from services.sla_monitor.domain.calendar import BusinessCalendar
from services.sla_monitor.domain.clocks import Window
from services.sla_monitor.domain.policy import (
    MARKETING_WEEKLY_VOLUME,
    REP_MONTHLY_VOLUME,
    SlaRule,
    SlaSettings,
)

LEAD_ASSIGNED = ("type", "lead.assigned")


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


def day_of(calendar: BusinessCalendar, at: datetime) -> tuple[datetime, datetime]:
    day = calendar.local_date(at)
    return _local_midnight(calendar, day), _local_midnight(calendar, day + timedelta(days=1))


class WindowSeries:
    """The windows of one volume SLA."""

    def __init__(self, rule: SlaRule, calendar: BusinessCalendar, policy_version: str) -> None:
        self.rule = rule
        self.calendar = calendar
        self.policy_version = policy_version
        settings = rule.settings
        if rule.kind == MARKETING_WEEKLY_VOLUME:  # the contract's two, as the general kind
            self.period, self.counts, self.per, self.share = "week", LEAD_ASSIGNED, None, True
        elif rule.kind == REP_MONTHLY_VOLUME:
            self.period, self.counts, self.per, self.share = "month", LEAD_ASSIGNED, "owner", False
        else:
            self.period, self.counts, self.per = settings.period, settings.counts, settings.per
            self.share = settings.min_fit_share is not None
        self.business_days_only = settings.business_days_only
        self.share_attr = settings.share_attr
        self.eligible_from: datetime | None = None  # start of the first period that is ever judged
        self.cursor: datetime | None = None  # start of the first eligible period not yet judged
        self.cursor_end: datetime | None = None
        self.clock: datetime | None = None  # the clock time judged up to
        # period start -> scope key (owner, team, or "") -> the period's window, and its checkpoints
        self.windows: dict[datetime, dict[str, Window]] = {}
        self.checkpoints: dict[datetime, dict[str, list[Window]]] = {}
        self._next_checkpoint: datetime | None = None  # the earliest end of an unjudged checkpoint

    # --- periods ----------------------------------------------------------------------------

    def period_of(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The period containing `at`, or None (a span's outside, a day that is not counted)."""
        period = self.period
        if period == "week":
            return week_of(self.calendar, at)
        if period == "month":
            return month_of(self.calendar, at)
        if period == "day":
            if self.business_days_only and not self.calendar.is_business_day(self.calendar.local_date(at)):
                return None
            return day_of(self.calendar, at)
        first, last = period  # a span of dates, both included
        start, end = _local_midnight(self.calendar, first), _local_midnight(self.calendar, last + timedelta(days=1))
        return (start, end) if start <= at < end else None

    def _next_start(self, end: datetime) -> datetime | None:
        """The start of the period after the one that ends at `end`."""
        if isinstance(self.period, tuple):
            return None
        if self.period == "day" and self.business_days_only:
            day = self.calendar.local_date(end)
            while not self.calendar.is_business_day(day):
                day += timedelta(days=1)
            return _local_midnight(self.calendar, day)
        return end

    def first_eligible(self, earliest: datetime) -> datetime | None:
        """The first period that starts at or after the earliest event time seen (contract §4)."""
        if isinstance(self.period, tuple):
            start = _local_midnight(self.calendar, self.period[0])
            return start if earliest <= start else None
        found = self.period_of(earliest)
        if found is not None and found[0] == earliest:
            return earliest
        end = found[1] if found is not None else day_of(self.calendar, earliest)[1]
        return self._next_start(end)

    def set_cursor(self, start: datetime | None) -> None:
        self.cursor = start
        found = None if start is None else self.period_of(start)
        self.cursor_end = None if found is None else found[1]
        if found is not None and self.rule.settings.pace is not None and self.per is None:
            self._checkpoints(found[0], found[1], "", self.rule.settings)  # judged even when empty

    def is_due(self, window: Window) -> bool:
        """Whether the window is judged (or must be judged now): eligible, and ended."""
        return (self.eligible_from is not None and self.eligible_from <= window.window_start
                and self.clock is not None and window.window_end <= self.clock)

    def next_due(self) -> datetime | None:
        """The earliest end of a window not judged yet (for the timer; may be early, never late)."""
        ends = [end for end in (self.cursor_end, self._next_checkpoint) if end is not None]
        return min(ends) if ends else None

    # --- counting and judging ---------------------------------------------------------------

    def begin(self, earliest: datetime) -> list[Window]:
        """The earliest event time seen is now `earliest`. Returns the windows this makes due at
        once (periods it makes eligible whose end the clock time already passed), unjudged."""
        eligible = self.first_eligible(earliest)
        if eligible is None or (self.eligible_from is not None and eligible >= self.eligible_from):
            return []
        self.eligible_from = eligible
        if self.cursor is None or eligible < self.cursor:
            self.set_cursor(eligible)
        return list(self.due_windows(self.clock)) if self.clock is not None else []

    def counted_by(self, event_type: str, entered: str | None) -> bool:
        kind, value = self.counts  # type: ignore[misc]
        return value == event_type if kind == "type" else value == entered

    def count(self, at: datetime, lead_id: str, scope_value: str | None, share_value: Any,
              settings: SlaSettings) -> list[Window]:
        """Count one lead at event time `at` in its period (judged or not) and in the period's
        checkpoints that end after `at`; the windows that changed (the lead was new there), and
        every checkpoint made for a scope seen for the first time in the period."""
        if self.per is not None and scope_value is None:
            return []
        found = self.period_of(at)
        if found is None:
            return []
        start, end = found
        key = "" if self.per is None else scope_value
        owners = self.windows.setdefault(start, {})
        window = owners.get(key)  # type: ignore[arg-type]
        if window is None:
            window = owners[key] = self._new_window(start, end, None if self.per is None else scope_value,  # type: ignore[index]
                                                    settings)
        changed = [window] if window.count_lead(lead_id, share_value) else []
        if settings.pace is not None:
            new = key not in self.checkpoints.get(start, {})
            for point in self._checkpoints(start, end, key, settings):  # type: ignore[arg-type]
                counted = at < point.window_end and point.count_lead(lead_id, share_value)
                if counted or new:  # a new scope's checkpoints: those already due are judged at once
                    changed.append(point)
        return changed

    def due_windows(self, now: datetime | None) -> Iterator[Window]:
        """The unjudged windows of every eligible period and checkpoint whose end is at or before
        `now`, in order; the caller judges each."""
        if now is None:
            return
        if self.clock is None or now > self.clock:
            self.clock = now
        while self.cursor_end is not None and self.cursor_end <= now:
            start, end = self.cursor, self.cursor_end
            assert start is not None
            yield from self._period_windows(start, end)
            self.set_cursor(self._next_start(end))
        if self.cursor is not None and self._next_checkpoint is not None and self._next_checkpoint <= now:
            # The cursor period's checkpoints that ended; later periods' all end after `now`.
            later: list[datetime] = []
            for start in sorted(s for s in self.checkpoints if s >= self.cursor):
                for key in sorted(self.checkpoints[start]):
                    for point in self.checkpoints[start][key]:
                        if point.outcome is None and point.window_end <= now:
                            yield point
                        elif point.outcome is None:
                            later.append(point.window_end)
            self._next_checkpoint = min(later) if later else None

    def expire(self, before: datetime) -> list[Window]:
        """Forget the windows that ended before `before` (the policy's correction window passed),
        judged or never eligible: marked expired and returned so the caller can persist them as
        final."""
        gone: list[Window] = []
        for start in list(self.windows):
            owners = self.windows[start]
            if owners and next(iter(owners.values())).window_end < before:
                for key, window in owners.items():
                    window.expired = True
                    gone.append(window)
                    for point in self.checkpoints.get(start, {}).get(key, ()):
                        point.expired = True
                        gone.append(point)
                del self.windows[start]
                self.checkpoints.pop(start, None)
        return gone

    def all_windows(self) -> Iterator[Window]:
        for owners in self.windows.values():
            yield from owners.values()
        for keyed in self.checkpoints.values():
            for points in keyed.values():
                yield from points

    def restore(self, window: Window) -> None:
        """Put back a window from a snapshot."""
        key = window.owner or ""
        if window.checkpoint is None:
            self.windows.setdefault(window.window_start, {})[key] = window
        else:
            points = self.checkpoints.setdefault(window.window_start, {}).setdefault(key, [])
            points[:] = [p for p in points if p.checkpoint != window.checkpoint] + [window]
            points.sort(key=lambda w: w.window_end)
            if window.outcome is None and (self._next_checkpoint is None or window.window_end < self._next_checkpoint):
                self._next_checkpoint = window.window_end

    def _period_windows(self, start: datetime, end: datetime) -> list[Window]:
        """The period's unjudged windows and checkpoints, judged now its end has passed."""
        owners = self.windows.get(start)
        if self.per is None and not owners:
            owners = self.windows[start] = {"": self._new_window(start, end, None, self.rule.settings)}
        out: list[Window] = []
        for key in sorted(owners or {}):
            for point in self.checkpoints.get(start, {}).get(key, ()):
                if point.outcome is None:
                    out.append(point)
            if owners[key].outcome is None:  # type: ignore[index]
                out.append(owners[key])  # type: ignore[index]
        return out

    def _checkpoints(self, start: datetime, end: datetime, key: str, settings: SlaSettings) -> list[Window]:
        """The pace checkpoints of one period and scope, made on first use."""
        keyed = self.checkpoints.setdefault(start, {})
        points = keyed.get(key)
        if points is None:
            days: list[date] = []
            day, last = self.calendar.local_date(start), self.calendar.local_date(end - timedelta(microseconds=1))
            while day <= last:
                if self.calendar.is_business_day(day):
                    days.append(day)
                day += timedelta(days=1)
            if settings.pace == "even":
                wanted = [(number, number / len(days)) for number in range(1, len(days) + 1)]
            else:
                wanted = [(number, share) for number, share in settings.pace if number <= len(days)]
            points = keyed[key] = []
            for number, share in wanted:
                checkpoint_day = days[number - 1]
                point = self._new_window(start, _local_midnight(self.calendar, checkpoint_day + timedelta(days=1)),
                                         None if self.per is None else key, settings)
                point.target = math.ceil(share * settings.target - 1e-9)
                point.checkpoint = checkpoint_day.isoformat()
                point.key = point.make_key()
                points.append(point)
            if points and (self._next_checkpoint is None or points[0].window_end < self._next_checkpoint):
                self._next_checkpoint = points[0].window_end
        return points

    def _new_window(self, start: datetime, end: datetime, scope_value: str | None, settings: SlaSettings) -> Window:
        return Window(
            sla=self.rule.name,
            kind=self.rule.kind,
            owner=scope_value,
            window_start=start,
            window_end=end,
            target=settings.target,
            policy_version=self.policy_version,
            min_fit_share=settings.min_fit_share if self.share else None,
            fit=settings.fit if self.share else None,
            per=self.per if self.per != "owner" else None,
            share_attr=self.share_attr if self.share else "fit",
        )


def share_value(attr: str, fit: str | None, channel: str | None, segment: str | None, team: str | None,
                source: str | None, attributes: Mapping[str, str] | None) -> Any:
    """The lead's value of the attribute a share is about."""
    if attr == "fit":
        return fit
    if attr == "channel":
        return channel
    if attr == "segment":
        return segment
    if attr == "team":
        return team
    if attr == "source":
        return source
    return (attributes or {}).get(attr)
