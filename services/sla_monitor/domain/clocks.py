"""The records the SLA engine keeps: clocks (one per lead and start event), windows (volume
SLAs), and the emissions that tell the outside world what happened to them.

Each record renders two shapes: `outcome_line()` (contract §5, what replay prints and what the
service publishes) and `to_snapshot()` / `from_snapshot()` (plain JSON-able data the service
persists in Postgres to resume after a restart).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.timefmt import format_utc, format_utc_precise, parse_rfc3339

# Outcomes (contract §4); a clock whose `outcome` is None is open.
MET = "met"
BREACHED = "breached"
CANCELLED = "cancelled"
OPEN = "open"

# Emission kinds.
STARTED = "started"
CORRECTED = "corrected"  # a declared breach decided otherwise (met, cancelled), or a window's outcome changed
WINDOW_CLOSED = "window_closed"  # a window judged for the first time
WINDOW_REJUDGED = "window_rejudged"  # a judged window counted a late lead: same outcome, new count
LATE_STOP = "late_stop"  # the first stop after due of a clock already declared breached: still breached
EMISSION_KINDS = (STARTED, MET, BREACHED, CANCELLED, CORRECTED, WINDOW_CLOSED, WINDOW_REJUDGED, LATE_STOP)

ClockKey = tuple[str, str, str]  # (sla, lead_id, id of the starting event)
WindowKey = tuple[str, str, str]  # (sla, owner or "", window start as RFC 3339 UTC)


def window_key(sla: str, owner: str | None, window_start: datetime, checkpoint: str | None = None) -> WindowKey:
    """A window's key: its SLA, owner ("" for none), and its start (plus a pace checkpoint's day)."""
    start = format_utc(window_start)
    return (sla, owner or "", start if checkpoint is None else f"{start}/pace/{checkpoint}")


def _time_out(value: datetime | None) -> str | None:
    return None if value is None else format_utc_precise(value)


def _time_in(value: str | None) -> datetime | None:
    return None if value is None else parse_rfc3339(value)


@dataclass(slots=True)
class Clock:
    sla: str
    kind: str
    lead_id: str
    start_event_id: str
    started_at: datetime
    due_at: datetime | None  # None: decided by an event, never by time (contact_attempts)
    policy_version: str
    calendar: str  # the calendar name the due time was computed in
    owner: str | None = None
    team: str | None = None
    segment: str | None = None
    channel: str | None = None
    required: int | None = None  # contact_attempts: attempts needed
    decide_reasons: tuple[str, ...] = ()  # contact_attempts: recycle/disqualify reasons that decide
    attempts: int = 0
    outcome: str | None = None  # None while open
    stopped_at: datetime | None = None
    stop_event_id: str | None = None
    decided_at: datetime | None = None  # event or clock time at which the outcome was set
    corrected: bool = False
    expired: bool = False  # breached, no stop, and the policy's correction window passed: final
    key: ClockKey = field(init=False)

    def __post_init__(self) -> None:
        self.key = (self.sla, self.lead_id, self.start_event_id)

    @property
    def is_open(self) -> bool:
        return self.outcome is None

    @property
    def awaits_stop(self) -> bool:
        """Open, or breached and not expired: a stop or a cancel at or before due may still decide
        it, however late it arrives (contract v2 §4), even after a later stop was recorded."""
        return self.outcome is None or (self.outcome == BREACHED and self.due_at is not None and not self.expired)

    def open_at(self, at: datetime) -> bool:
        """"Open" as a new start at event time `at` sees it (contract v2 §4): not decided by an
        event, and not due before `at`. A breach declared by the clock time does not close it."""
        return self.awaits_stop and (self.due_at is None or self.due_at >= at)

    def copy(self) -> Clock:
        clone = Clock.__new__(Clock)
        for name in Clock.__slots__:
            object.__setattr__(clone, name, getattr(self, name))
        return clone

    def outcome_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "sla": self.sla,
            "lead_id": self.lead_id,
            "scope": {},
            "outcome": self.outcome or OPEN,
            "started_at": format_utc(self.started_at),
            "due_at": None if self.due_at is None else format_utc(self.due_at),
            "stopped_at": None if self.stopped_at is None else format_utc(self.stopped_at),
        }
        if self.required is not None:
            line["attempts"] = self.attempts
            line["required"] = self.required
        if self.corrected:
            line["corrected"] = True
        return line

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "type": "clock",
            "sla": self.sla,
            "kind": self.kind,
            "lead_id": self.lead_id,
            "start_event_id": self.start_event_id,
            "started_at": _time_out(self.started_at),
            "due_at": _time_out(self.due_at),
            "policy_version": self.policy_version,
            "calendar": self.calendar,
            "owner": self.owner,
            "team": self.team,
            "segment": self.segment,
            "channel": self.channel,
            "required": self.required,
            "decide_reasons": list(self.decide_reasons),
            "attempts": self.attempts,
            "outcome": self.outcome,
            "stopped_at": _time_out(self.stopped_at),
            "stop_event_id": self.stop_event_id,
            "decided_at": _time_out(self.decided_at),
            "corrected": self.corrected,
            "expired": self.expired,
            "final": not self.awaits_stop,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Clock:
        return cls(
            sla=data["sla"],
            kind=data["kind"],
            lead_id=data["lead_id"],
            start_event_id=data["start_event_id"],
            started_at=_time_in(data["started_at"]),  # type: ignore[arg-type]
            due_at=_time_in(data["due_at"]),
            policy_version=data["policy_version"],
            calendar=data["calendar"],
            owner=data.get("owner"),
            team=data.get("team"),
            segment=data.get("segment"),
            channel=data.get("channel"),
            required=data.get("required"),
            decide_reasons=tuple(data.get("decide_reasons", ())),
            attempts=data.get("attempts", 0),
            outcome=data.get("outcome"),
            stopped_at=_time_in(data.get("stopped_at")),
            stop_event_id=data.get("stop_event_id"),
            decided_at=_time_in(data.get("decided_at")),
            corrected=data.get("corrected", False),
            expired=data.get("expired", False),
        )


@dataclass(slots=True)
class Window:
    """One judged period of a volume SLA: a week (owner None) or an owner's month."""

    sla: str
    kind: str
    owner: str | None
    window_start: datetime
    window_end: datetime
    target: int
    policy_version: str
    min_fit_share: float | None = None  # weekly only
    fit: str | None = None  # weekly: the fit value that counts as good
    leads: set[str] = field(default_factory=set)  # distinct leads counted
    good_fit: int = 0  # weekly: counted leads whose fit was `fit` when assigned
    outcome: str | None = None
    judged_at: datetime | None = None
    corrected: bool = False  # re-judged with a different outcome after a late lead
    revision: int = 0  # emissions so far: each leadflow.sla record of the window has its own
    expired: bool = False  # past the policy's correction window: final, forgotten by the engine
    per: str | None = None  # the scope key of `owner`: None means "owner" (or no scope without one)
    checkpoint: str | None = None  # a pace checkpoint: its business day (local date)
    share_attr: str = "fit"  # the lead attribute `fit` / `min_fit_share` are about
    key: WindowKey = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.make_key()

    def make_key(self) -> WindowKey:
        return window_key(self.sla, self.owner, self.window_start, self.checkpoint)

    @property
    def scope(self) -> dict[str, str]:
        """The outcome line's scope: {}, {"owner": ...} or {"team": ...}, and a checkpoint's day."""
        scope: dict[str, str] = {} if self.owner is None else {self.per or "owner": self.owner}
        if self.checkpoint is not None:
            scope["checkpoint"] = self.checkpoint
        return scope

    @property
    def weekly(self) -> bool:
        """Whether a share of the counted leads is part of the goal (the weekly handoff's fit)."""
        return self.min_fit_share is not None

    @property
    def count(self) -> int:
        return len(self.leads)

    @property
    def fit_share(self) -> float | None:
        return self.good_fit / len(self.leads) if self.leads else None

    def count_lead(self, lead_id: str, fit: Any) -> bool:
        """Count one lead; a lead counts once per window, with its share attribute (fit) at that
        first time."""
        if lead_id in self.leads:
            return False
        self.leads.add(lead_id)
        if self.fit is not None and fit == self.fit:
            self.good_fit += 1
        return True

    def judge(self, at: datetime) -> str:
        met = self.count >= self.target
        if self.weekly:
            share = self.fit_share
            # With no leads there is no share to miss (fit_share null); the count decides.
            met = met and (share is None or share >= self.min_fit_share)  # type: ignore[operator]
        self.outcome = MET if met else BREACHED
        self.judged_at = at
        return self.outcome

    def copy(self) -> Window:
        clone = Window.__new__(Window)
        for name in Window.__slots__:
            object.__setattr__(clone, name, getattr(self, name))
        clone.leads = set(self.leads)
        return clone

    def outcome_line(self) -> dict[str, Any]:
        start, end = format_utc(self.window_start), format_utc(self.window_end)
        line: dict[str, Any] = {
            "sla": self.sla,
            "lead_id": None,
            "scope": self.scope,
            "outcome": self.outcome or OPEN,
            "started_at": start,
            "due_at": end,
            "stopped_at": None,
            "window_start": start,
            "window_end": end,
            "count": self.count,
            "target": self.target,
        }
        if self.weekly:
            line[f"{self.share_attr}_share"] = self.fit_share
        if self.corrected:
            line["corrected"] = True
        return line

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "type": "window",
            "sla": self.sla,
            "kind": self.kind,
            "owner": self.owner,
            "window_start": _time_out(self.window_start),
            "window_end": _time_out(self.window_end),
            "target": self.target,
            "policy_version": self.policy_version,
            "min_fit_share": self.min_fit_share,
            "fit": self.fit,
            "leads": sorted(self.leads),
            "good_fit": self.good_fit,
            "outcome": self.outcome,
            "judged_at": _time_out(self.judged_at),
            "corrected": self.corrected,
            "revision": self.revision,
            "expired": self.expired,
            "per": self.per,
            "checkpoint": self.checkpoint,
            "share_attr": self.share_attr,
            # A judged window still counts late leads (contract v2 §4): final only once expired.
            "final": self.expired,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Window:
        return cls(
            sla=data["sla"],
            kind=data["kind"],
            owner=data.get("owner"),
            window_start=_time_in(data["window_start"]),  # type: ignore[arg-type]
            window_end=_time_in(data["window_end"]),  # type: ignore[arg-type]
            target=data["target"],
            policy_version=data["policy_version"],
            min_fit_share=data.get("min_fit_share"),
            fit=data.get("fit"),
            leads=set(data.get("leads", ())),
            good_fit=data.get("good_fit", 0),
            outcome=data.get("outcome"),
            judged_at=_time_in(data.get("judged_at")),
            corrected=data.get("corrected", False),
            revision=data.get("revision", 1 if data.get("outcome") else 0),
            expired=data.get("expired", False),
            per=data.get("per"),
            checkpoint=data.get("checkpoint"),
            share_attr=data.get("share_attr", "fit"),
        )


@dataclass(frozen=True, slots=True)
class Emission:
    """Something that happened to one clock or window, with a copy of it as it is now.

    `at` is the event time for event-driven emissions (started, met, cancelled, corrected, and a
    breach decided by an event) and the clock time for time-driven ones (breached, window_closed).
    `late`: declared longer than the policy's `late_declaration_after` after the time it is about
    (history, e.g. a backlog: counted, never paged). `revision` tells a window's emissions apart
    (clocks get each kind at most once, so theirs is 0).
    """

    kind: str
    at: datetime
    policy_version: str
    clock: Clock | None = None
    window: Window | None = None
    late: bool = False
    revision: int = 0

    @property
    def sla(self) -> str:
        return self.clock.sla if self.clock is not None else self.window.sla  # type: ignore[union-attr]

    @property
    def key(self) -> ClockKey | WindowKey:
        return self.clock.key if self.clock is not None else self.window.key  # type: ignore[union-attr]

    def outcome_line(self) -> dict[str, Any]:
        subject = self.clock if self.clock is not None else self.window
        return subject.outcome_line()  # type: ignore[union-attr]

    def to_snapshot(self) -> dict[str, Any]:
        subject = self.clock if self.clock is not None else self.window
        return subject.to_snapshot()  # type: ignore[union-attr]
