"""The SLA engine: contract §4's clocks and windows driven by lifecycle transitions and time.

    engine = SlaEngine(policy)
    engine.advance(now)        # breaches whose due time passed, windows whose end passed
    engine.observe(transition) # starts / stops / cancels clocks, counts windows
    engine.outcome_lines(until)

Pure: no I/O and no clock reads; time only comes in through `advance(now)` and event times.

Outcomes follow event time alone (contract v2 §4): a clock's final outcome depends only on its
lead's events in log order and their occurred_at; a window's only on the assignments whose
occurred_at falls in it. The clock time (`advance`) decides only *when* a breach is declared and a
window judged, so that they happen when nothing arrives. Which transitions count (choices where
the contract is silent):
- A duplicate (version None) never counts for anything.
- Starts need an applied transition (`ignored` None): an obligation is not created from an event
  the lifecycle refused. "Enters stage X" means to_stage == X != from_stage (an ignored
  transition moves nothing, so it neither starts nor cancels).
- Stops are facts reported by upstream (an acceptance, a contact attempt, a deal result): an
  ignored-but-not-duplicate event still stops a clock, e.g. a late lead.accepted after the lead
  moved on to sql. Stops and attempt counts need occurred_at >= the clock's start (contract §4).
- A stop or a cancel whose occurred_at is at or before due decides the clock (met, cancelled),
  also after its breach was declared (then a correction, `corrected`). Cancels by stage entry
  follow the lead's stage in log order, whatever their occurred_at relative to the start.
- A stop or cancel of the lead whose occurred_at is after a clock's due time finds it breached:
  a stop then records `stopped_at` (the first such), a cancel changes nothing. Such a breach
  still waits for a stop or cancel at or before due, however late it arrives. (Other events do
  not look at the lead's clocks: the clock time declares those breaches, with the same outcome.)
- "While no such clock is open" (sales_acceptance, contact_attempts) is judged at the starting
  event's occurred_at (`Clock.open_at`).
- contact.connected cancels contact_attempts like a stop, so it needs occurred_at >= start.
- Windows count every assignment in the period of its occurred_at; one in a judged period judges
  that window again (`window_rejudged`, or `corrected` when the outcome changes).
- A decision declared longer than the policy's `late_declaration_after` after the time it is
  about is marked `late` (history: counted, not paged). The declaration time is `declaring_at`
  when the caller sets it (the live service: the wall clock of the batch), else the clock time.
- ...and, when the policy sets a `correction_window` (unset by default: contract §4 sets no
  limit), only for that long: once the clock time passes `due + correction_window` the breach
  is final (`expired`), and a window past `end + correction_window` too. They leave the live
  state (reported once more by `take_changes()` with `"final": true`); a stop or a late lead
  observed after that changes nothing. This is the one setting under which the processing time
  can change an outcome; it exists to bound a long-running monitor's memory.

Memory (keep_history=False, the live service): the engine holds the clocks that can still change
(open, or breached within the correction window), indexed by lead (a lead with none has no
entry), the windows being counted, and two time queues whose stale entries (clocks decided
before their time came) are dropped when they outnumber the live ones. Finished clocks and
judged windows are only in the emissions and in `take_changes()`, which the caller must drain.
A clock with no due time (contact_attempts) that is never decided stays open, and so in memory,
for as long as its lead gets no deciding event (contract §4 has no time limit for it).
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Protocol

from services.common.envelope import Event
from services.common.timefmt import format_utc_precise, parse_rfc3339
from services.sla_monitor.domain.clocks import (
    BREACHED,
    CANCELLED,
    CORRECTED,
    LATE_STOP,
    MET,
    STARTED,
    WINDOW_CLOSED,
    WINDOW_REJUDGED,
    Clock,
    ClockKey,
    Emission,
    Window,
    WindowKey,
)
from services.sla_monitor.domain.policy import (
    CLOSED_LOOP_FEEDBACK,
    CONTACT_ATTEMPTS,
    SALES_ACCEPTANCE,
    SPEED_TO_LEAD,
    WINDOW_KINDS,
    Policy,
    SlaRule,
    SlaSettings,
)
from services.sla_monitor.domain.windows import WindowSeries, share_value

SNAPSHOT_FORMAT = 1

# Event types and stages the rules react to (contract §2–4).
LEAD_CREATED = "lead.created"
LEAD_ASSIGNED = "lead.assigned"
LEAD_ACCEPTED = "lead.accepted"
LEAD_REJECTED = "lead.rejected"
CONTACT_ATTEMPTED = "contact.attempted"
CONTACT_CONNECTED = "contact.connected"
OPPORTUNITY_CREATED = "opportunity.created"
DEAL_WON = "deal.won"
DEAL_LOST = "deal.lost"
MQL, REJECTED, RECYCLED, DISQUALIFIED = "mql", "rejected", "recycled", "disqualified"

# What stops (met) and what cancels each clock kind.
_STOPS: dict[str, frozenset[str]] = {
    SPEED_TO_LEAD: frozenset({CONTACT_ATTEMPTED, CONTACT_CONNECTED}),
    SALES_ACCEPTANCE: frozenset({LEAD_ACCEPTED, LEAD_REJECTED}),
    CONTACT_ATTEMPTS: frozenset(),
    CLOSED_LOOP_FEEDBACK: frozenset({DEAL_WON, DEAL_LOST}),
}
_CANCELLING_STAGES: dict[str, frozenset[str]] = {
    SPEED_TO_LEAD: frozenset({REJECTED, RECYCLED, DISQUALIFIED}),
    SALES_ACCEPTANCE: frozenset({RECYCLED, DISQUALIFIED}),
    CONTACT_ATTEMPTS: frozenset(),  # decided instead, see _contact_attempts_effect
    CLOSED_LOOP_FEEDBACK: frozenset(),
}
_DECIDING_STAGES = frozenset({RECYCLED, DISQUALIFIED})  # contact_attempts
# Anything outside these cannot change a running clock: lets observe() skip the clock loop.
_RELEVANT_TYPES = frozenset().union(*_STOPS.values(), {CONTACT_ATTEMPTED, CONTACT_CONNECTED})
_RELEVANT_STAGES = frozenset().union(*_CANCELLING_STAGES.values(), _DECIDING_STAGES)


class _ClockQueue:
    """Clocks by a time, earliest first, for `advance`. An entry whose clock no longer qualifies
    (`qualifies(clock)` false: decided early, stopped) is stale: it is dropped when it reaches the
    front, or all at once when stale entries are more than half the queue, so the queue never
    holds more than about twice the clocks that qualify. The owner calls `went_stale()` exactly
    once for each queued clock that stops qualifying before it is popped."""

    __slots__ = ("_heap", "_seq", "_stale", "_qualifies")
    COMPACT_MIN = 256  # stale entries below this are left for the front to drop

    def __init__(self, qualifies: Callable[[Clock], bool]) -> None:
        self._heap: list[tuple[datetime, datetime, tuple, int, Clock]] = []
        self._seq = itertools.count()
        self._stale = 0
        self._qualifies = qualifies

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: datetime, clock: Clock) -> None:
        # Ties at the same time go by start time, then key: an order that depends only on the
        # clocks, so an engine restored from a snapshot emits exactly what an uninterrupted one does.
        heapq.heappush(self._heap, (at, clock.started_at, clock.key, next(self._seq), clock))

    def went_stale(self) -> None:
        self._stale += 1
        if self._stale >= self.COMPACT_MIN and 2 * self._stale > len(self._heap):
            self._heap = [entry for entry in self._heap if self._qualifies(entry[-1])]
            heapq.heapify(self._heap)
            self._stale = 0

    def pop_before(self, now: datetime) -> list[Clock]:
        """Remove and return, in time order, the qualifying clocks queued strictly before `now`."""
        heap, out = self._heap, []
        while heap and heap[0][0] < now:
            clock = heapq.heappop(heap)[-1]
            if self._qualifies(clock):
                out.append(clock)
            elif self._stale:
                self._stale -= 1
        return out

    def first(self) -> datetime | None:
        """The earliest time of a qualifying clock (stale entries in front are dropped)."""
        heap = self._heap
        while heap and not self._qualifies(heap[0][-1]):
            heapq.heappop(heap)
            if self._stale:
                self._stale -= 1
        return heap[0][0] if heap else None


def _is_open(clock: Clock) -> bool:
    return clock.outcome is None


def _awaits_correction(clock: Clock) -> bool:
    return clock.outcome == BREACHED and clock.awaits_stop


class TransitionLike(Protocol):
    """What the engine reads of `services.lifecycle.domain.Transition`."""

    lead_id: str
    event_id: str
    version: int | None
    from_stage: str | None
    to_stage: str
    ignored: str | None
    event: Event
    channel: str | None
    segment: str | None
    fit: str | None
    owner: str | None
    team: str | None


@dataclass(slots=True)
class EngineChanges:
    """What changed since the last `take_changes()`, for incremental persistence.

    Snapshots carry `"final": true` once a record will not change again (the service may then
    archive it, and no longer loads it at start); that includes a breach whose correction window
    passed (`"expired": true`), which leaves the engine at that moment. `state` is the
    engine-level part of `snapshot()` (clock time, window cursors).
    """

    clocks: list[dict[str, Any]] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    lead_attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # lead -> campaign, country


class SlaEngine:
    def __init__(self, policy: Policy, *, keep_history: bool = True) -> None:
        """`keep_history`: remember finished clocks and judged windows for `outcome_lines`
        (replay, backtest); the live service passes False and relies on emissions instead."""
        self.policy = policy
        self.keep_history = keep_history
        self.now: datetime | None = None  # clock time: the latest time advanced to
        # When the caller knows the real time of a declaration (the live service: the wall clock
        # of the batch), it sets this; else decisions are declared at the clock time.
        self.declaring_at: datetime | None = None
        self.first_seen_at: datetime | None = None  # the earliest occurred_at seen
        self._live: dict[str, list[Clock]] = {}  # lead_id -> clocks that can still change
        self._history: list[Clock] = []  # every clock in start order (keep_history)
        self._judged: list[Window] = []  # judged windows, in the order first judged (keep_history)
        self._due_queue = _ClockQueue(_is_open)  # open clocks with a due time, by due time
        self._expiry = _ClockQueue(_awaits_correction)  # breached, no stop: by due + correction window
        self._correction_window = policy.correction_window
        self._late_after = policy.late_declaration_after
        self._dirty_clocks: dict[ClockKey, Clock] = {}
        self._dirty_windows: dict[WindowKey, Window] = {}
        self._series: list[WindowSeries] = []
        self._counted_by_type: dict[str, list[WindowSeries]] = {}
        self._counted_by_stage: dict[str, list[WindowSeries]] = {}
        # lead.created attributes (campaign, country) some scope or share reads, per lead
        self._tracked = policy.lead_attributes
        self._lead_attributes: dict[str, dict[str, str]] = {}
        self._dirty_attributes: set[str] = set()
        self._starts_on_enter: dict[str, list[SlaRule]] = {}
        self._starts_on_type: dict[str, list[SlaRule]] = {}
        self._rule_order: dict[str, int] = {}
        for index, rule in enumerate(policy.rules):
            self._rule_order[rule.name] = index
            if rule.kind in WINDOW_KINDS:
                calendar = policy.calendar_for(rule.settings, None)
                series = WindowSeries(rule, calendar, policy.version)
                self._series.append(series)
                kind, value = series.counts  # type: ignore[misc]
                by = self._counted_by_type if kind == "type" else self._counted_by_stage
                by.setdefault(value, []).append(series)
            elif rule.kind == SPEED_TO_LEAD:
                # the start stage is a setting (starts_on, per segment, channel or team)
                stages = {rule.settings.starts_on} | {
                    o.changes["starts_on"] for o in rule.overrides if "starts_on" in o.changes}
                for stage in sorted(stages):
                    self._starts_on_enter.setdefault(stage, []).append(rule)
            elif rule.kind in (SALES_ACCEPTANCE, CONTACT_ATTEMPTS):
                self._starts_on_type.setdefault(LEAD_ASSIGNED, []).append(rule)
            elif rule.kind == CLOSED_LOOP_FEEDBACK:
                self._starts_on_type.setdefault(OPPORTUNITY_CREATED, []).append(rule)
        self._next_window_end: datetime | None = None

    # --- time -------------------------------------------------------------------------------

    def advance(self, now: datetime) -> list[Emission]:
        """Move clock time to `now` (never backwards): declare breaches of open clocks whose due
        time is strictly before `now`, judge windows whose end is at or before `now`."""
        if self.now is not None and now <= self.now:
            now = self.now
        self.now = now
        emissions: list[Emission] = []
        for clock in self._due_queue.pop_before(now):
            self._declare_breach(clock, now, emissions, by_event=False)
        if self._correction_window is not None:
            for clock in self._expiry.pop_before(now):
                self._expire(clock)
            for series in self._series:
                for window in series.expire(now - self._correction_window):
                    self._dirty_windows[window.key] = window
        if self._next_window_end is not None and self._next_window_end <= now:
            for series in self._series:
                for window in series.due_windows(now):
                    self._judge(window, now, emissions)
            self._update_next_window_end()
        else:
            for series in self._series:  # the clock time windows are due by
                series.clock = now
        return emissions

    def next_deadline(self) -> datetime | None:
        """The earliest time at which `advance` could emit something (for the live timer)."""
        candidates = [self._next_window_end] if self._next_window_end is not None else []
        first_due = self._due_queue.first()  # exact: stale entries in front are dropped
        if first_due is not None:
            candidates.append(first_due)
        return min(candidates) if candidates else None

    def _declared(self, about: datetime, fallback: datetime) -> tuple[datetime, bool]:
        """When a decision about time `about` is declared, and whether that is late."""
        at = self.declaring_at or self.now or fallback
        if at < fallback:
            at = fallback
        return at, at - about > self._late_after

    # --- events -----------------------------------------------------------------------------

    def observe(self, transition: TransitionLike) -> list[Emission]:
        """Apply one lifecycle transition (in log order): stop, cancel, decide and find breached
        the lead's clocks, then start new ones, then count windows."""
        event = transition.event
        at = event.occurred_at
        emissions: list[Emission] = []
        if self.first_seen_at is None or at < self.first_seen_at:
            self._begin(at, emissions)
        if transition.version is None:
            return emissions  # a duplicate event_id never counts
        etype = event.type
        moved = transition.ignored is None and transition.to_stage != transition.from_stage
        entered = transition.to_stage if moved else None
        clocks = self._live.get(transition.lead_id)
        # Only stops, cancels and deciding stages change a clock; any other event past a due time
        # would only declare a breach a little sooner than the clock time does.
        if clocks and (etype in _RELEVANT_TYPES or entered in _RELEVANT_STAGES):
            changed = False
            for clock in clocks:
                changed |= self._apply(clock, transition, entered, emissions)
            if changed:
                remaining = [clock for clock in clocks if clock.awaits_stop]
                if remaining:
                    self._live[transition.lead_id] = remaining
                else:
                    del self._live[transition.lead_id]
        if self._tracked and etype == LEAD_CREATED and transition.lead_id not in self._lead_attributes:
            self._remember_attributes(transition)
        if transition.ignored is None:
            starters: list[tuple[SlaRule, str | None]] = []
            if entered is not None and entered in self._starts_on_enter:
                starters += [(rule, entered) for rule in self._starts_on_enter[entered]]
            if etype in self._starts_on_type:
                starters += [(rule, None) for rule in self._starts_on_type[etype]]
            for rule, stage in starters:
                self._start(rule, transition, emissions, stage)
            counting = self._counted_by_type.get(etype)
            if entered is not None and entered in self._counted_by_stage:
                counting = (counting or []) + self._counted_by_stage[entered]
            if counting:
                self._count(counting, transition, emissions)
        return emissions

    def _remember_attributes(self, transition: TransitionLike) -> None:
        payload = transition.event.payload
        found = {key: str(payload[key]) for key in self._tracked if payload.get(key) is not None}
        self._lead_attributes[transition.lead_id] = found
        self._dirty_attributes.add(transition.lead_id)

    def _apply(self, clock: Clock, transition: TransitionLike, entered: str | None, out: list[Emission]) -> bool:
        """One event of the clock's lead; whether the clock changed."""
        if clock.kind == CONTACT_ATTEMPTS:
            return self._contact_attempts_effect(clock, transition, entered, out)
        event = transition.event
        at = event.occurred_at
        due = clock.due_at
        late = due is not None and at > due
        if event.type in _STOPS[clock.kind] and at >= clock.started_at:
            if not late:
                self._settle(clock, MET, event, out)
                return True
            if clock.stopped_at is None:  # the first late stop is recorded; it decides nothing
                clock.stopped_at = at
                clock.stop_event_id = event.event_id
                if clock.outcome is None:  # found breached by it: the breach record carries it
                    self._declare_breach(clock, at, out, by_event=True)
                else:
                    self._changed(clock)
                    _, late_news = self._declared(at, at)
                    out.append(Emission(LATE_STOP, at, clock.policy_version, clock=clock.copy(), late=late_news))
            return True
        if entered in _CANCELLING_STAGES[clock.kind] and not late:
            self._settle(clock, CANCELLED, event, out)
            return True
        if late and clock.outcome is None:  # whatever the event, the clock was due before it
            self._declare_breach(clock, at, out, by_event=True)
            return True
        return False

    def _contact_attempts_effect(self, clock: Clock, transition: TransitionLike, entered: str | None,
                                 out: list[Emission]) -> bool:
        if clock.outcome is not None:
            return False
        event = transition.event
        if event.type == CONTACT_ATTEMPTED and event.occurred_at >= clock.started_at:
            clock.attempts += 1
            self._changed(clock)
        elif event.type == CONTACT_CONNECTED and event.occurred_at >= clock.started_at:
            self._settle(clock, CANCELLED, event, out)
        elif entered in _DECIDING_STAGES:
            reason = event.payload.get("reason")
            if reason in clock.decide_reasons:
                outcome = MET if clock.attempts >= (clock.required or 0) else BREACHED
            else:
                outcome = CANCELLED
            self._settle(clock, outcome, event, out)
        else:
            return False
        return True

    def _declare_breach(self, clock: Clock, at: datetime, out: list[Emission], *, by_event: bool) -> None:
        """An open clock found breached: by the clock time passing its due time (`at` = the
        clock time), or by an event of its lead that happened after it (`at` = its event time)."""
        if by_event:
            self._due_queue.went_stale()  # its due-queue entry is stale
        clock.outcome = BREACHED
        clock.decided_at = at
        self._changed(clock)
        _, late = self._declared(clock.due_at or at, at)  # type: ignore[arg-type]
        out.append(Emission(BREACHED, at, clock.policy_version, clock=clock.copy(), late=late))
        if self._correction_window is not None:
            self._expiry.push(clock.due_at + self._correction_window, clock)  # type: ignore[operator]

    def _settle(self, clock: Clock, outcome: str, event: Event, out: list[Emission]) -> None:
        """An event decides the clock for good: met or cancelled (in time), or contact_attempts'
        verdict. After a declared breach this is a correction."""
        at = event.occurred_at
        previous = clock.outcome
        if previous is None and clock.due_at is not None:
            self._due_queue.went_stale()  # decided before due: its due-queue entry is stale
        elif previous == BREACHED and self._correction_window is not None:
            self._expiry.went_stale()
        clock.outcome = outcome
        clock.stopped_at = at
        clock.stop_event_id = event.event_id
        clock.decided_at = at
        clock.corrected = previous == BREACHED
        self._changed(clock)
        _, late = self._declared(at, at)
        kind = CORRECTED if previous == BREACHED else outcome
        out.append(Emission(kind, at, clock.policy_version, clock=clock.copy(), late=late))

    def _start(self, rule: SlaRule, transition: TransitionLike, out: list[Emission], stage: str | None) -> None:
        event = transition.event
        lead_id = transition.lead_id
        attributes = self._lead_attributes.get(lead_id) if self._tracked else None
        if not rule.scope.matches(transition.channel, transition.segment, transition.team, event.source, attributes):
            return
        settings = rule.settings_for(transition.channel, transition.segment, transition.team, event.source)
        if not settings.enabled or (stage is not None and settings.starts_on != stage):
            return
        start = event.occurred_at
        if rule.kind in (SALES_ACCEPTANCE, CONTACT_ATTEMPTS):
            # "while no such clock is open for the lead", judged at the start's event time
            for other in self._live.get(lead_id, ()):
                if other.sla == rule.name and other.open_at(start):
                    return
        calendar_name = self.policy.calendar_name_for(settings, transition.team)
        clock = Clock(
            sla=rule.name,
            kind=rule.kind,
            lead_id=lead_id,
            start_event_id=event.event_id,
            started_at=start,
            due_at=self._due(rule.kind, settings, calendar_name, start),
            policy_version=self.policy.version,
            calendar=calendar_name,
            owner=transition.owner,
            team=transition.team,
            segment=transition.segment,
            channel=transition.channel,
        )
        if rule.kind == CONTACT_ATTEMPTS:
            clock.required = settings.required_attempts
            clock.decide_reasons = tuple(sorted(settings.decide_reasons))
        self._live.setdefault(lead_id, []).append(clock)
        if self.keep_history:
            self._history.append(clock)
        if clock.due_at is not None:
            self._due_queue.push(clock.due_at, clock)
        self._changed(clock)
        out.append(Emission(STARTED, start, clock.policy_version, clock=clock.copy()))

    def _due(self, kind: str, settings: SlaSettings, calendar_name: str, start: datetime) -> datetime | None:
        calendar = self.policy.calendars[calendar_name]
        if kind == SALES_ACCEPTANCE:
            return calendar.business_close_of_nth_business_day(start, settings.business_days)
        if kind == CONTACT_ATTEMPTS:
            return None
        assert settings.due is not None
        if settings.business_time:
            return calendar.add_business_time(start, settings.due)
        return start + settings.due

    def _count(self, counting: list[WindowSeries], transition: TransitionLike, out: list[Emission]) -> None:
        """Count the lead in the windows of the series that count this event (or stage entry)."""
        event = transition.event
        attributes = self._lead_attributes.get(transition.lead_id) if self._tracked else None
        for series in counting:
            rule = series.rule
            if not rule.scope.matches(transition.channel, transition.segment, transition.team, event.source, attributes):
                continue
            settings = rule.settings_for(transition.channel, transition.segment, transition.team, event.source)
            if not settings.enabled:
                continue
            scope_value = transition.team if series.per == "team" else transition.owner
            share = share_value(series.share_attr, transition.fit, transition.channel, transition.segment,
                                transition.team, event.source, attributes) if series.share else None
            for window in series.count(event.occurred_at, transition.lead_id, scope_value, share, settings):
                self._dirty_windows[window.key] = window
                if series.is_due(window):  # a late lead: its window is judged (again)
                    self._judge(window, self.now or event.occurred_at, out)
            due = series.next_due()  # a new owner's pace checkpoints may be due before anything else
            if due is not None and (self._next_window_end is None or due < self._next_window_end):
                self._next_window_end = due

    def _judge(self, window: Window, clock_time: datetime, out: list[Emission]) -> None:
        """Judge a window (again, when it was judged before) and emit what changed."""
        before = window.outcome
        declared, late = self._declared(window.window_end, clock_time)
        after = window.judge(declared)
        window.revision += 1
        if before is None:
            kind = WINDOW_CLOSED
            if self.keep_history:
                self._judged.append(window)
        elif after != before:
            kind = CORRECTED
            window.corrected = True
        else:
            kind = WINDOW_REJUDGED
        self._dirty_windows[window.key] = window
        out.append(Emission(kind, clock_time, window.policy_version, window=window.copy(), late=late,
                            revision=window.revision))

    def _begin(self, earliest: datetime, out: list[Emission]) -> None:
        """The earliest event time seen moved (or the first event came): windows may become
        eligible; those whose end the clock time already passed are judged now."""
        self.first_seen_at = earliest
        for series in self._series:
            for window in series.begin(earliest):
                self._judge(window, self.now or earliest, out)
        self._update_next_window_end()

    def _update_next_window_end(self) -> None:
        ends = [end for series in self._series if (end := series.next_due()) is not None]
        self._next_window_end = min(ends) if ends else None

    def _expire(self, clock: Clock) -> None:
        """The correction window of a breached clock without a stop passed: the breach is final
        and the clock leaves the live state (it stays in the history)."""
        clock.expired = True
        clocks = self._live.get(clock.lead_id)
        if clocks is not None:
            remaining = [other for other in clocks if other is not clock]
            if remaining:
                self._live[clock.lead_id] = remaining
            else:
                del self._live[clock.lead_id]
        self._changed(clock)

    def _changed(self, clock: Clock) -> None:
        self._dirty_clocks[clock.key] = clock

    # --- reading ----------------------------------------------------------------------------

    def outcome_lines(self, until: datetime) -> list[dict[str, Any]]:
        """Contract §5 lines: every clock (start order), then every judged window (by window
        start, policy order, owner). Advances to `until` first (a no-op if already there);
        clocks still undecided are `open`. Needs keep_history=True for finished clocks."""
        self.advance(until)
        clocks = self._history if self.keep_history else [c for cs in self._live.values() for c in cs]
        windows = sorted(
            self._judged,
            key=lambda w: (w.window_start, self._rule_order.get(w.sla, len(self._rule_order)), w.owner or "",
                           w.window_end),
        )
        return [clock.outcome_line() for clock in clocks] + [window.outcome_line() for window in windows]

    def live_clocks(self) -> Iterable[Clock]:
        for clocks in self._live.values():
            yield from clocks

    @property
    def has_changes(self) -> bool:
        """Whether `take_changes()` has clocks or windows to report (an `advance` can change
        clocks without emitting anything: a breach whose correction window passed)."""
        return bool(self._dirty_clocks or self._dirty_windows)

    def memory_stats(self) -> dict[str, int]:
        """Sizes of the engine's live structures (for tests, logs and the benchmark)."""
        return {
            "leads": len(self._live),
            "live_clocks": sum(len(clocks) for clocks in self._live.values()),
            "due_queue": len(self._due_queue),
            "expiry_queue": len(self._expiry),
            "windows": sum(1 for series in self._series for _ in series.all_windows()),
            "lead_attributes": len(self._lead_attributes),
            "unsaved_changes": len(self._dirty_clocks) + len(self._dirty_windows),
            "history": len(self._history) + len(self._judged),
        }

    # --- persistence ------------------------------------------------------------------------

    def take_changes(self) -> EngineChanges:
        """Clocks and windows changed since the last call (then forgotten), plus engine state."""
        changes = EngineChanges(
            clocks=[clock.to_snapshot() for clock in self._dirty_clocks.values()],
            windows=[window.to_snapshot() for window in self._dirty_windows.values()],
            state=self._state(),
            lead_attributes={lead: self._lead_attributes[lead] for lead in self._dirty_attributes},
        )
        self._dirty_clocks.clear()
        self._dirty_windows.clear()
        self._dirty_attributes.clear()
        return changes

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume: plain JSON-able data (finished records are left out)."""
        return {
            **self._state(),
            "clocks": [clock.to_snapshot() for clock in self.live_clocks()],
            "windows": [window.to_snapshot() for series in self._series for window in series.all_windows()],
            "lead_attributes": dict(self._lead_attributes),
        }

    def _state(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "policy_version": self.policy.version,
            "now": None if self.now is None else format_utc_precise(self.now),
            "first_seen_at": None if self.first_seen_at is None else format_utc_precise(self.first_seen_at),
            "window_cursors": {
                series.rule.name: format_utc_precise(series.cursor)
                for series in self._series
                if series.cursor is not None
            },
        }

    @classmethod
    def restore(cls, policy: Policy, snapshot: dict[str, Any], *, keep_history: bool = False) -> SlaEngine:
        """An engine that resumes from `snapshot()` (possibly under a newer policy: clocks keep
        the due times and policy version they started with; new clocks use `policy`)."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported SLA engine snapshot format {snapshot.get('format')!r}")
        engine = cls(policy, keep_history=keep_history)
        if snapshot.get("now"):
            engine.now = parse_rfc3339(snapshot["now"])
        if snapshot.get("first_seen_at"):
            engine.first_seen_at = parse_rfc3339(snapshot["first_seen_at"])
        cursors = snapshot.get("window_cursors", {})
        for series in engine._series:
            if engine.first_seen_at is None:
                continue
            series.begin(engine.first_seen_at)  # eligible_from, and the cursor if none is stored
            if series.rule.name in cursors:
                series.set_cursor(parse_rfc3339(cursors[series.rule.name]))
        engine._update_next_window_end()
        for data in snapshot.get("clocks", ()):
            clock = Clock.from_snapshot(data)
            if clock.awaits_stop:  # a final one (not in snapshot(), but a caller may pass it) is not live
                engine._live.setdefault(clock.lead_id, []).append(clock)
            if keep_history:
                engine._history.append(clock)
            if clock.outcome is None and clock.due_at is not None:
                engine._due_queue.push(clock.due_at, clock)
            elif _awaits_correction(clock) and engine._correction_window is not None:  # `policy`'s window
                engine._expiry.push(clock.due_at + engine._correction_window, clock)  # type: ignore[operator]
        series_by_name = {series.rule.name: series for series in engine._series}
        for data in snapshot.get("windows", ()):
            window = Window.from_snapshot(data)
            series = series_by_name.get(window.sla)
            if series is None or window.expired:  # an SLA removed from the policy: its counts are dropped
                continue
            series.restore(window)
            if keep_history and window.outcome is not None:
                engine._judged.append(window)
        if engine._tracked:
            engine._lead_attributes.update(snapshot.get("lead_attributes", {}))
        for series in engine._series:
            series.clock = engine.now
        engine._update_next_window_end()
        return engine

    from_snapshot = restore  # the name docs/architecture.md uses


def replay_outcomes(policy: Policy, transitions: Iterable[TransitionLike], until: datetime | None = None,
                    on_emission: Callable[[Emission], None] | None = None) -> list[dict[str, Any]]:
    """Drive an engine the way `leadflow replay` does: clock time = the largest occurred_at seen
    so far; at the end `until` (default: that largest occurred_at)."""
    engine = SlaEngine(policy)
    max_seen: datetime | None = None
    for transition in transitions:
        at = transition.event.occurred_at
        if max_seen is None or at > max_seen:
            max_seen = at
        emitted = engine.advance(max_seen) + engine.observe(transition)
        if on_emission is not None:
            for emission in emitted:
                on_emission(emission)
    end = until if until is not None else max_seen
    if end is None:
        return []
    final = engine.advance(end)
    if on_emission is not None:
        for emission in final:
            on_emission(emission)
    return engine.outcome_lines(end)
