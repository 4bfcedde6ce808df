"""The SLA monitor's metrics, exactly as docs/metrics.md names them. The registry is passed in
(tests use a fresh one). Labels never hold a lead id, an e-mail or free text: `team` is a
configured team, the SLA's owning side, a bounded number of team names seen, or `other`; `scope`
of a rep's month is an owner id (never an e-mail), bounded the same way."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import ConsumerLag
from services.sla_monitor.domain import Clock, Emission, Policy
from services.sla_monitor.domain.clocks import (
    BREACHED,
    CANCELLED,
    CORRECTED,
    LATE_STOP,
    MET,
    STARTED,
    WINDOW_CLOSED,
    WINDOW_REJUDGED,
)
from services.sla_monitor.domain.policy import WINDOW_KINDS, MARKETING_WEEKLY_VOLUME
from services.sla_monitor.records import owner_team

SERVICE = "sla_monitor"
OUTCOMES = (MET, BREACHED, CANCELLED)
# `declared`: on time, or late (more than the policy's late_declaration_after after the time the
# decision is about: a backlog or a backfill). Paging and burn-rate rules read on_time only.
ON_TIME, LATE = "on_time", "late"
DECLARED = (ON_TIME, LATE)
ERROR_KINDS = ("kafka", "postgres", "decode", "publish", "timer", "internal")
TIME_TO_ACTION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 345600, 604800,
                          2592000, 7776000)
MAX_TEAMS = 64
MAX_OWNERS = 1000
_TEAM = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class WindowView:
    """What the gauges need of a window being counted."""

    sla: str
    owner: str | None
    start: datetime
    end: datetime
    count: int
    target: int


class BoundedLabel:
    """An open attribute as a label value: `pattern`-shaped values for the first `limit` distinct
    ones (plus `always`), anything else `other`."""

    def __init__(self, pattern: re.Pattern[str], limit: int, always: Iterable[str] = (), lower: bool = True) -> None:
        self.pattern = pattern
        self.limit = limit
        self.lower = lower
        self._seen: dict[object, str] = {value: value for value in always}
        self._free = limit

    def __call__(self, value: object) -> str:
        label = self._seen.get(value)
        if label is not None:
            return label
        text = value.strip() if isinstance(value, str) else ""
        if self.lower:
            text = text.lower()
        if "@" not in text and self.pattern.match(text) and self._free > 0:
            self._free -= 1
            label = text
        else:
            label = "other"
        if len(self._seen) < self.limit * 4:  # remember refusals too, within bounds
            self._seen[value] = label
        return label


class SlaMetrics:
    def __init__(self, registry: CollectorRegistry, policy: Policy) -> None:
        self.registry = registry
        self.policy = policy
        self._kind = {rule.name: rule.kind for rule in policy.rules}
        self.outcomes = Counter("leadflow_sla_outcomes_total", "Clocks and windows decided (first decision)",
                                ["sla", "team", "outcome", "declared"], registry=registry)
        self.breaches = Counter("leadflow_sla_breaches_total",
                                "Breaches (clocks, windows below target, windows corrected to breached)",
                                ["sla", "team", "declared"], registry=registry)
        self.window_breaches = Counter("leadflow_sla_window_breaches_total",
                                       "Volume windows and pace checkpoints judged below target, or corrected to it",
                                       ["sla", "team", "declared"], registry=registry)
        self.clocks_open = Gauge("leadflow_sla_clocks_open", "Clocks currently open", ["sla", "team"],
                                 registry=registry)
        self.clocks_at_risk = Gauge("leadflow_sla_clocks_at_risk",
                                    "Open clocks past 75% of the time between start and due", ["sla", "team"],
                                    registry=registry)
        self.time_to_action = Histogram("leadflow_sla_time_to_action_seconds",
                                        "Seconds from start to stop (event time) of met clocks", ["sla", "team"],
                                        buckets=TIME_TO_ACTION_BUCKETS, registry=registry)
        self.volume_count = Gauge("leadflow_sla_volume_count", "Distinct leads in the current window",
                                  ["sla", "scope"], registry=registry)
        self.volume_target = Gauge("leadflow_sla_volume_target", "Target of the current window",
                                   ["sla", "scope"], registry=registry)
        self.corrections = Counter("leadflow_sla_corrections_total",
                                   "Declared outcomes corrected by late events: a breach to met or cancelled, "
                                   "a window to its new outcome", ["sla", "team", "to"], registry=registry)
        self.timer_last_run = Gauge("leadflow_sla_timer_last_run_timestamp_seconds",
                                    "Unix time of the last timer tick", registry=registry)
        self.lag = ConsumerLag(registry, SERVICE)
        self.records = Counter("leadflow_consumer_records_total", "Records consumed", ["service", "topic"],
                               registry=registry)
        self.errors = Counter("leadflow_errors_total", "Handled errors", ["service", "kind"], registry=registry)
        self.team = BoundedLabel(_TEAM, MAX_TEAMS, always=list(policy.team_calendars) + ["sales", "marketing"])
        self.owner = BoundedLabel(_OWNER, MAX_OWNERS, lower=False)
        self._known: set[tuple[str, str]] = set()
        self._gauge_pairs: set[tuple[str, str]] = set()
        self._volume_scopes: set[tuple[str, str]] = set()
        for kind in ERROR_KINDS:
            self.errors.labels(SERVICE, kind)
        for rule in policy.rules:
            self.know(rule.name, owner_team(rule.kind))

    # --- series creation ------------------------------------------------------------------

    def know(self, sla: str, team: str) -> None:
        """Create the (sla, team) series at 0 (docs/metrics.md: before the first decision)."""
        if (sla, team) in self._known:
            return
        self._known.add((sla, team))
        for declared in DECLARED:
            for outcome in OUTCOMES:
                self.outcomes.labels(sla, team, outcome, declared)
            self.breaches.labels(sla, team, declared)
        for outcome in OUTCOMES:
            self.corrections.labels(sla, team, outcome)
        if self._kind.get(sla) in WINDOW_KINDS:
            for declared in DECLARED:
                self.window_breaches.labels(sla, team, declared)
        else:
            self.time_to_action.labels(sla, team)
            self.clocks_open.labels(sla, team).set(0)
            self.clocks_at_risk.labels(sla, team).set(0)
            self._gauge_pairs.add((sla, team))

    def team_of_clock(self, clock: Clock) -> str:
        return self.team(clock.team) if clock.team else owner_team(clock.kind)

    def error(self, kind: str) -> None:
        self.errors.labels(SERVICE, kind if kind in ERROR_KINDS else "internal").inc()

    # --- events ---------------------------------------------------------------------------

    def count_emissions(self, emissions: Iterable[Emission]) -> None:
        """Counters of committed emissions (each emission is committed exactly once). Counted per
        batch: increments are summed per series first, so each series is touched once (a
        prometheus-client `labels()` look-up and `inc()` cost microseconds each)."""
        outcomes: dict[tuple[str, str, str, str], int] = {}
        breaches: dict[tuple[str, str, str], int] = {}
        corrections: dict[tuple[str, str, str], int] = {}
        window_breaches: dict[tuple[str, str, str], int] = {}
        seconds_by_pair: dict[tuple[str, str], list[float]] = {}
        team_cache: dict[object, str] = {}
        for emission in emissions:
            kind = emission.kind
            clock = emission.clock
            declared = LATE if emission.late else ON_TIME
            if clock is not None:
                pair = (clock.sla, self._clock_team(clock, team_cache))
                if pair not in self._known:
                    self.know(*pair)  # a started clock counts nothing, but creates its series
                if kind == STARTED or kind == LATE_STOP:  # a late stop changes no outcome
                    continue
                if kind in OUTCOMES:
                    key = (pair[0], pair[1], kind, declared)
                    outcomes[key] = outcomes.get(key, 0) + 1
                    if kind == BREACHED:
                        breach = (pair[0], pair[1], declared)
                        breaches[breach] = breaches.get(breach, 0) + 1
                    elif kind == MET and clock.stopped_at is not None:
                        seconds = (clock.stopped_at - clock.started_at).total_seconds()
                        seconds_by_pair.setdefault(pair, []).append(max(0.0, seconds))
                elif kind == CORRECTED:
                    key = (pair[0], pair[1], clock.outcome or MET)
                    corrections[key] = corrections.get(key, 0) + 1
                else:  # pragma: no cover - the engine emits no other clock kinds
                    self.error("internal")
            elif emission.window is not None and kind != WINDOW_REJUDGED:
                window = emission.window
                team = owner_team(window.kind)
                self.know(window.sla, team)
                outcome = window.outcome or BREACHED
                if kind == WINDOW_CLOSED:
                    key = (window.sla, team, outcome, declared)
                    outcomes[key] = outcomes.get(key, 0) + 1
                elif kind == CORRECTED:
                    fix = (window.sla, team, outcome)
                    corrections[fix] = corrections.get(fix, 0) + 1
                if outcome == BREACHED:  # closed below target, or corrected to below target
                    breach = (window.sla, team, declared)
                    breaches[breach] = breaches.get(breach, 0) + 1
                    window_breaches[breach] = window_breaches.get(breach, 0) + 1
        for key, n in outcomes.items():
            self.outcomes.labels(*key).inc(n)
        for key, n in breaches.items():
            self.breaches.labels(*key).inc(n)
        for key, n in corrections.items():
            self.corrections.labels(*key).inc(n)
        for key, n in window_breaches.items():
            self.window_breaches.labels(*key).inc(n)
        for pair, values in seconds_by_pair.items():
            observe = self.time_to_action.labels(*pair).observe
            for value in values:
                observe(value)

    def _clock_team(self, clock: Clock, cache: dict[object, str]) -> str:
        """team_of_clock, remembered for the batch by the clock's raw team (or kind)."""
        raw = clock.team or ("", clock.kind)
        team = cache.get(raw)
        if team is None:
            team = cache[raw] = self.team_of_clock(clock)
        return team

    # --- gauges ---------------------------------------------------------------------------

    def set_clock_gauges(self, clocks: Iterable[Clock], now: datetime) -> None:
        """Open and at-risk clocks per (sla, team), from the engine's live clocks."""
        open_count: dict[tuple[str, str], int] = {}
        at_risk: dict[tuple[str, str], int] = {}
        for clock in clocks:
            if clock.outcome is not None:
                continue
            pair = (clock.sla, self.team_of_clock(clock))
            open_count[pair] = open_count.get(pair, 0) + 1
            due = clock.due_at
            if due is not None and clock.started_at + (due - clock.started_at) * 0.75 <= now:
                at_risk[pair] = at_risk.get(pair, 0) + 1
        for pair in open_count:
            self.know(*pair)
        for pair in self._gauge_pairs:
            self.clocks_open.labels(*pair).set(open_count.get(pair, 0))
            self.clocks_at_risk.labels(*pair).set(at_risk.get(pair, 0))

    def set_volume_gauges(self, windows: Iterable[WindowView], now: datetime) -> None:
        """Count and target of each volume SLA's current window. `windows`: the windows still
        being counted, as `WindowView`s."""
        current: dict[tuple[str, str], tuple[int, int]] = {}
        for w in windows:
            if w.start <= now < w.end:
                scope = "all" if w.owner is None else self.owner(w.owner)
                count, _ = current.get((w.sla, scope), (0, 0))
                current[(w.sla, scope)] = (count + w.count, w.target)
        for rule in self.policy.rules:
            if rule.kind == MARKETING_WEEKLY_VOLUME:
                current.setdefault((rule.name, "all"), (0, rule.settings.target))
        for (sla, scope), (count, target) in current.items():
            self.volume_count.labels(sla, scope).set(count)
            self.volume_target.labels(sla, scope).set(target)
            self._volume_scopes.add((sla, scope))
        for sla, scope in self._volume_scopes - set(current):
            self.volume_count.labels(sla, scope).set(0)  # an owner with no lead yet this month
