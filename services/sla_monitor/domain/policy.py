"""SLA policy as code: a TOML file validated into an immutable `Policy`.

Shape (see default_policy.toml, the built-in policy, which is contract §4):

    description = "..."                     # optional, not part of the version
    correction_window = "30d"               # optional, see below
    late_declaration_after = "1h"           # optional, see below
    [calendars.NAME]                        # "default" always exists (contract calendar)
    timezone = "Europe/Berlin"; working_days = ["mon", ...]; opens = "09:00"; closes = "17:00"
    holidays = [2026-12-25, "2026-12-26"]
    [teams.TEAM]                            # a team's business calendar
    calendar = "NAME"
    [slas.NAME]                             # NAME is the `sla` printed; `kind` defaults to NAME
    kind = "speed_to_lead"; enabled = true; calendar = "NAME"
    scope = { channel = ["website"], segment = ..., team = ..., source = ... }
    <the kind's numbers>
    [[slas.NAME.overrides]]                 # applied in order, later ones win
    when = { segment = "enterprise" }       # channel / segment / team / source
    <numbers to change>

Rules: unknown keys are errors; a field left out takes the contract default for its kind
(including speed_to_lead's website scope and contact_attempts' enterprise override); a file
without `[slas]` keeps the built-in SLAs (so a file may only add calendars and teams). A broken
file raises `PolicyError` naming the field path and, where it can be found, the line.

`correction_window` (a duration; unset by default, which is contract §4 exactly: a late stop
corrects a breach however late it arrives; "0s" turns corrections of declared breaches off): how
long after its due time a breached clock that got no stop can still be corrected to met by a
late stop. Past `due + correction_window` (by clock time) the breach is final and the engine
forgets the clock (see engine.py), which bounds a long-running monitor's memory. It is part of
the version only when set, so the built-in policy keeps its version.

`late_declaration_after` (a duration, default 1h): a breach (or any decision) declared longer
than this after the time it is about (a clock's due time, a window's end, a stop's event time)
is history, not news: it is emitted and counted as usual but marked late, and the paging and
burn-rate alerts ignore it (contract v2: a backlog or a backfill of old events must not page
anyone). It changes no outcome, so it is not part of the version.
"""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.sla_monitor.domain.calendar import WEEKDAY_NAMES, BusinessCalendar

# SLA kinds (contract §4); an SLA's behaviour is its kind, its numbers come from the policy.
SPEED_TO_LEAD = "speed_to_lead"
SALES_ACCEPTANCE = "sales_acceptance"
CONTACT_ATTEMPTS = "contact_attempts"
CLOSED_LOOP_FEEDBACK = "closed_loop_feedback"
MARKETING_WEEKLY_VOLUME = "marketing_weekly_volume"
REP_MONTHLY_VOLUME = "rep_monthly_volume"
VOLUME = "volume"  # the general volume goal: any period, any counted event or stage, per owner or team
CLOCK_KINDS = (SPEED_TO_LEAD, SALES_ACCEPTANCE, CONTACT_ATTEMPTS, CLOSED_LOOP_FEEDBACK)
WINDOW_KINDS = (MARKETING_WEEKLY_VOLUME, REP_MONTHLY_VOLUME, VOLUME)
KINDS = CLOCK_KINDS + WINDOW_KINDS

DEFAULT_CALENDAR_NAME = "default"
SCOPE_KEYS = ("channel", "segment", "team", "source")
# Attributes a lead gets from its lead.created (contract §2) that a scope may name besides those:
# the SLA engine remembers them per lead when a policy uses them. email and company are personal
# data, never a scope.
LEAD_ATTRIBUTES = ("campaign", "country")
ALL_SCOPE_KEYS = SCOPE_KEYS + LEAD_ATTRIBUTES
PERIODS = ("day", "week", "month")
BUILTIN_SOURCE = "built-in policy"
DEFAULT_CORRECTION_WINDOW: timedelta | None = None  # unset: corrections have no time limit (contract §4)
DEFAULT_LATE_DECLARATION_AFTER = timedelta(hours=1)  # decisions declared later than this are history (no page)


class PolicyError(ValueError):
    """A policy file that cannot be used. `field` is the dotted path, `line` 1-based or None."""

    def __init__(self, source: str, field: str, reason: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")
        self.source = source
        self.field = field
        self.reason = reason
        self.line = line


# --- the validated policy -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """Which leads an SLA (or an override) applies to: attribute -> allowed values; None = any."""

    channel: frozenset[str] | None = None
    segment: frozenset[str] | None = None
    team: frozenset[str] | None = None
    source: frozenset[str] | None = None
    campaign: frozenset[str] | None = None
    country: frozenset[str] | None = None

    def matches(self, channel: str | None, segment: str | None, team: str | None, source: str | None,
                attributes: Mapping[str, str] | None = None) -> bool:
        """`attributes`: the lead's lead.created attributes (campaign, country) when the policy
        uses them."""
        return (
            (self.channel is None or channel in self.channel)
            and (self.segment is None or segment in self.segment)
            and (self.team is None or team in self.team)
            and (self.source is None or source in self.source)
            and (self.campaign is None or (attributes or {}).get("campaign") in self.campaign)
            and (self.country is None or (attributes or {}).get("country") in self.country)
        )

    @property
    def lead_attributes(self) -> frozenset[str]:
        """The lead.created attributes this scope reads."""
        return frozenset(key for key in LEAD_ATTRIBUTES if getattr(self, key) is not None)

    def to_canonical(self) -> dict[str, list[str]]:
        return {key: sorted(values) for key in ALL_SCOPE_KEYS if (values := getattr(self, key)) is not None}


@dataclass(frozen=True, slots=True)
class SlaSettings:
    """An SLA's numbers after overrides. Fields a kind does not use keep their defaults."""

    enabled: bool = True
    calendar: str | None = None  # None: the lead's team calendar, else the default calendar
    due: timedelta | None = None
    business_time: bool = True
    business_days: int = 2
    required_attempts: int = 6
    decide_reasons: frozenset[str] = frozenset({"no_response"})
    target: int = 0
    min_fit_share: float | None = 0.5  # the share of counted leads with `share_attr` == `fit`
    fit: str = "good"
    # Added with the volume kind and starts_on; left out of the version while at their defaults
    # (NEW_SETTINGS), so every policy written before keeps its version.
    starts_on: str = "mql"  # speed_to_lead: the stage whose entry starts the clock
    period: Any = None  # volume: "day" | "week" | "month" | (first date, last date)
    counts: tuple[str, str] | None = None  # volume: ("type", "meeting.booked") or ("stage", "mql")
    per: str | None = None  # volume: None (one count), "owner" or "team"
    business_days_only: bool = False  # volume, period "day": only the calendar's business days
    share_attr: str = "fit"  # volume: the lead attribute `min_share` is about
    pace: Any = None  # volume: "even" or ((business day, share), ...)


NEW_SETTINGS = {"starts_on": "mql", "period": None, "counts": None, "per": None, "business_days_only": False,
                "share_attr": "fit", "pace": None}


@dataclass(frozen=True, slots=True)
class Override:
    when: Scope
    changes: Mapping[str, Any]


@dataclass(frozen=True)
class SlaRule:
    name: str
    kind: str
    scope: Scope
    settings: SlaSettings
    overrides: tuple[Override, ...] = ()
    _resolved: dict[tuple, SlaSettings] = field(default_factory=dict, repr=False, compare=False)

    def settings_for(
        self, channel: str | None, segment: str | None, team: str | None, source: str | None
    ) -> SlaSettings:
        # (overrides' `when` never names lead.created attributes other than channel and segment)
        """The settings after every override whose `when` matches, in file order."""
        if not self.overrides:
            return self.settings
        key = (channel, segment, team, source)
        found = self._resolved.get(key)
        if found is None:
            found = self.settings
            for override in self.overrides:
                if override.when.matches(channel, segment, team, source):
                    found = replace(found, **override.changes)
            self._resolved[key] = found
        return found


@dataclass(frozen=True)
class Policy:
    rules: tuple[SlaRule, ...]
    calendars: Mapping[str, BusinessCalendar]
    team_calendars: Mapping[str, str]
    version: str  # short sha256 of the canonical form: recorded on every clock
    source: str = BUILTIN_SOURCE  # the file it was read from, or BUILTIN_SOURCE
    # How long after due a breached clock without a stop may still be corrected (then final).
    correction_window: timedelta | None = DEFAULT_CORRECTION_WINDOW
    # Decisions declared longer than this after the time they are about are marked late.
    late_declaration_after: timedelta = DEFAULT_LATE_DECLARATION_AFTER

    @property
    def lead_attributes(self) -> frozenset[str]:
        """The lead.created attributes (campaign, country) some SLA's scope or share reads: the
        engine remembers them per lead only when this is not empty."""
        found: set[str] = set()
        for rule in self.rules:
            found |= rule.scope.lead_attributes
            if rule.kind == VOLUME and rule.settings.share_attr in LEAD_ATTRIBUTES:
                found.add(rule.settings.share_attr)
        return frozenset(found)

    def calendar_name_for(self, settings: SlaSettings, team: str | None) -> str:
        """An SLA's own calendar if set, else the team's, else the default calendar."""
        if settings.calendar is not None:
            return settings.calendar
        return self.team_calendars.get(team, DEFAULT_CALENDAR_NAME) if team else DEFAULT_CALENDAR_NAME

    def calendar_for(self, settings: SlaSettings, team: str | None) -> BusinessCalendar:
        return self.calendars[self.calendar_name_for(settings, team)]

    def rule(self, name: str) -> SlaRule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


# --- loading --------------------------------------------------------------------------------


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in the TOML file at `path`; None: the built-in default (contract §4)."""
    if path is None:
        return _DEFAULT_POLICY
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), "", f"cannot read the file ({exc})") from None
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate TOML text into a Policy; raises PolicyError, never returns a partial policy."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        if match:
            line: int | None = int(match.group(1))
        else:  # "(at end of document)"
            line = max(1, len(text.splitlines())) if "end of document" in str(exc) else None
        raise PolicyError(source, "", f"not valid TOML: {exc}", line) from None
    try:
        return _Validator().policy(data, source)
    except _Invalid as exc:
        raise PolicyError(source, exc.path, exc.reason, _find_line(text, exc.path)) from None


def default_policy() -> Policy:
    return _DEFAULT_POLICY


# --- validation -----------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CLOCK_TIME = re.compile(r"^(\d{2}):(\d{2})$")

_COMMON_KEYS = ("kind", "description", "enabled", "calendar", "scope", "overrides")
# The numbers each kind takes (override-able), with the contract default.
_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    SPEED_TO_LEAD: {"due": timedelta(hours=1), "business_time": True},
    SALES_ACCEPTANCE: {"business_days": 2},
    CONTACT_ATTEMPTS: {"required_attempts": 6, "decide_reasons": frozenset({"no_response"})},
    CLOSED_LOOP_FEEDBACK: {"due": timedelta(days=90), "business_time": False},
    MARKETING_WEEKLY_VOLUME: {"target": 50, "min_fit_share": 0.5, "fit": "good"},
    REP_MONTHLY_VOLUME: {"target": 150},
    VOLUME: {"period": None, "counts": None, "per": None, "business_days_only": False, "target": None,
             "min_share": None, "pace": None},
}
# The settings a kind's TOML keys set, where they differ from the keys (volume).
_VOLUME_REQUIRED = ("period", "counts", "target")
_KIND_DEFAULTS[SPEED_TO_LEAD]["starts_on"] = "mql"
_KIND_DEFAULT_SCOPE: dict[str, Scope] = {SPEED_TO_LEAD: Scope(channel=frozenset({"website"}))}
_KIND_DEFAULT_OVERRIDES: dict[str, tuple[Override, ...]] = {
    CONTACT_ATTEMPTS: (Override(Scope(segment=frozenset({"enterprise"})), {"required_attempts": 8}),),
}
# Which `when` keys an override may use: a weekly marketing window is one count for everyone, so
# it has no per-lead overrides (define a second SLA with `kind` and a `scope` instead); a rep's
# month takes its numbers from the team of the assignment that opens it.
_OVERRIDE_WHEN_KEYS: dict[str, tuple[str, ...]] = {
    **{kind: SCOPE_KEYS for kind in CLOCK_KINDS},
    MARKETING_WEEKLY_VOLUME: (),
    REP_MONTHLY_VOLUME: ("team",),
    VOLUME: ("team",),
}
_CALENDAR_KEYS = ("timezone", "working_days", "opens", "closes", "holidays")
_DEFAULT_CALENDAR_FIELDS = {
    "timezone": "Europe/Berlin",
    "working_days": frozenset({0, 1, 2, 3, 4}),
    "opens": time(9),
    "closes": time(17),
    "holidays": frozenset(),
}


class _Validator:
    def policy(self, data: dict[str, Any], source: str) -> Policy:
        self._unknown_keys("", data, ("description", "correction_window", "late_declaration_after", "calendars",
                                      "teams", "slas"))
        self._string_or_absent("description", data.get("description"))
        correction_window = DEFAULT_CORRECTION_WINDOW
        if "correction_window" in data:
            correction_window = _duration("correction_window", data["correction_window"])
        late_after = DEFAULT_LATE_DECLARATION_AFTER
        if "late_declaration_after" in data:
            late_after = _duration("late_declaration_after", data["late_declaration_after"])
        calendars = self.calendars(data.get("calendars", {}))
        teams = self.teams(data.get("teams", {}), calendars)
        if "slas" in data:
            rules = self.slas(data["slas"], calendars)
        else:
            rules = _DEFAULT_POLICY.rules  # a file may only add calendars and teams
        canonical = {
            "calendars": {name: _calendar_canonical(cal) for name, cal in sorted(calendars.items())},
            "teams": dict(sorted(teams.items())),
            "slas": [_rule_canonical(rule) for rule in rules],
        }
        if correction_window is not None:  # unset keeps the built-in policy's version
            canonical["correction_window"] = int(correction_window.total_seconds())
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        version = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
        return Policy(rules=tuple(rules), calendars=calendars, team_calendars=teams, version=version,
                      source=source, correction_window=correction_window, late_declaration_after=late_after)

    # calendars and teams

    def calendars(self, value: Any) -> dict[str, BusinessCalendar]:
        table = self._table("calendars", value)
        calendars = {DEFAULT_CALENDAR_NAME: BusinessCalendar(**_DEFAULT_CALENDAR_FIELDS)}
        for name, body in table.items():
            calendars[name] = self.calendar(f"calendars.{_key(name)}", body)
        return calendars

    def calendar(self, path: str, value: Any) -> BusinessCalendar:
        table = self._table(path, value)
        self._unknown_keys(path, table, _CALENDAR_KEYS)
        fields = dict(_DEFAULT_CALENDAR_FIELDS)
        if "timezone" in table:
            zone = table["timezone"]
            if not isinstance(zone, str):
                raise _Invalid(f"{path}.timezone", f'expected a time zone name like "Europe/Berlin", got {_show(zone)}')
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise _Invalid(f"{path}.timezone", f"unknown time zone {zone!r}") from None
            fields["timezone"] = zone
        if "working_days" in table:
            fields["working_days"] = self.weekdays(f"{path}.working_days", table["working_days"])
        if "opens" in table:
            fields["opens"] = self.clock_time(f"{path}.opens", table["opens"], allow_24=False)
        if "closes" in table:
            fields["closes"] = self.clock_time(f"{path}.closes", table["closes"], allow_24=True)
        if "holidays" in table:
            fields["holidays"] = self.holidays(f"{path}.holidays", table["holidays"])
        closes, opens = fields["closes"], fields["opens"]
        if closes != time(0) and closes <= opens:
            raise _Invalid(f"{path}.closes", f"must be after opens ({opens:%H:%M}), got {closes:%H:%M}")
        return BusinessCalendar(**fields)

    def weekdays(self, path: str, value: Any) -> frozenset[int]:
        if not isinstance(value, list) or not value:
            raise _Invalid(path, f'expected a non-empty list of weekdays like ["mon", "tue"], got {_show(value)}')
        days = set()
        for index, item in enumerate(value):
            if not isinstance(item, str) or item.lower() not in WEEKDAY_NAMES:
                raise _Invalid(f"{path}[{index}]", f"expected one of {', '.join(WEEKDAY_NAMES)}, got {_show(item)}")
            days.add(WEEKDAY_NAMES.index(item.lower()))
        return frozenset(days)

    def clock_time(self, path: str, value: Any, *, allow_24: bool) -> time:
        match = _CLOCK_TIME.match(value) if isinstance(value, str) else None
        if match:
            hour, minute = int(match.group(1)), int(match.group(2))
            if allow_24 and (hour, minute) == (24, 0):
                return time(0)  # midnight at the end of the day
            if hour < 24 and minute < 60:
                return time(hour, minute)
        raise _Invalid(path, f'expected a time of day like "09:00", got {_show(value)}')

    def holidays(self, path: str, value: Any) -> frozenset[date]:
        if not isinstance(value, list):
            raise _Invalid(path, f"expected a list of dates, got {_show(value)}")
        days = set()
        for index, item in enumerate(value):
            days.add(self.holiday(f"{path}[{index}]", item))
        return frozenset(days)

    def holiday(self, path: str, value: Any) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value  # a TOML local date
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise _Invalid(path, f"expected a date like 2026-12-25, got {_show(value)}")

    def teams(self, value: Any, calendars: Mapping[str, BusinessCalendar]) -> dict[str, str]:
        table = self._table("teams", value)
        teams = {}
        for team, body in table.items():
            path = f"teams.{_key(team)}"
            body = self._table(path, body)
            self._unknown_keys(path, body, ("calendar",))
            if "calendar" not in body:
                raise _Invalid(f"{path}.calendar", "is required")
            teams[team] = self.calendar_name(f"{path}.calendar", body["calendar"], calendars)
        return teams

    def calendar_name(self, path: str, value: Any, calendars: Mapping[str, BusinessCalendar]) -> str:
        if not isinstance(value, str):
            raise _Invalid(path, f"expected a calendar name, got {_show(value)}")
        if value not in calendars:
            known = ", ".join(sorted(calendars))
            raise _Invalid(path, f"no calendar named {value!r} (known: {known})")
        return value

    # slas

    def slas(self, value: Any, calendars: Mapping[str, BusinessCalendar]) -> list[SlaRule]:
        table = self._table("slas", value)
        return [self.sla(name, body, calendars) for name, body in table.items()]

    def sla(self, name: str, value: Any, calendars: Mapping[str, BusinessCalendar]) -> SlaRule:
        path = f"slas.{_key(name)}"
        table = self._table(path, value)
        kind = table.get("kind", name)
        if kind not in KINDS:
            field_path = f"{path}.kind" if "kind" in table else path
            raise _Invalid(field_path, f"unknown SLA kind {kind!r}: expected one of {', '.join(KINDS)}"
                           + ("" if "kind" in table else " (set `kind` to name an SLA freely)"))
        numbers = _KIND_DEFAULTS[kind]
        self._unknown_keys(path, table, _COMMON_KEYS + tuple(numbers))
        self._string_or_absent(f"{path}.description", table.get("description"))
        if kind == VOLUME:
            for key in _VOLUME_REQUIRED:
                if key not in table:
                    raise _Invalid(f"{path}.{key}", "is required for kind = \"volume\"")
            settings = SlaSettings(min_fit_share=None)
        else:
            settings = SlaSettings(**{k: v for k, v in numbers.items() if k != "starts_on"})
        changes = self.numbers(path, table, kind, calendars)
        settings = replace(settings, **changes)
        if kind == VOLUME:
            self.check_volume(path, settings)
        scope = self.scope(f"{path}.scope", table["scope"], ALL_SCOPE_KEYS) if "scope" in table else _KIND_DEFAULT_SCOPE.get(kind, Scope())
        if "overrides" in table:
            overrides = self.overrides(f"{path}.overrides", table["overrides"], kind, calendars)
        else:
            overrides = _KIND_DEFAULT_OVERRIDES.get(kind, ())
        return SlaRule(name=name, kind=kind, scope=scope, settings=settings, overrides=overrides)

    def numbers(self, path: str, table: Mapping[str, Any], kind: str, calendars: Mapping[str, BusinessCalendar]) -> dict[str, Any]:
        """The settings present in `table` (an SLA or an override), validated."""
        changes: dict[str, Any] = {}
        for key, value in table.items():
            where = f"{path}.{key}"
            if key == "enabled" or key == "business_time":
                if not isinstance(value, bool):
                    raise _Invalid(where, f"expected true or false, got {_show(value)}")
                changes[key] = value
            elif key == "calendar":
                changes[key] = self.calendar_name(where, value, calendars)
            elif key == "due":
                changes[key] = _duration(where, value)
            elif key in ("business_days", "required_attempts", "target"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise _Invalid(where, f"expected a whole number >= 0, got {_show(value)}")
                changes[key] = value
            elif key == "min_fit_share":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise _Invalid(where, f"expected a number from 0 to 1, got {_show(value)}")
                changes[key] = float(value)
            elif key == "fit":
                if not isinstance(value, str) or not value:
                    raise _Invalid(where, f'expected a fit value like "good", got {_show(value)}')
                changes[key] = value
            elif key == "decide_reasons":
                changes[key] = frozenset(self.strings(where, value))
            elif key == "starts_on":
                changes[key] = self.stage(where, value)
            elif key == "period":
                changes[key] = self.period(where, value)
            elif key == "counts":
                changes[key] = self.counts(where, value)
            elif key == "per":
                if value not in ("owner", "team"):
                    raise _Invalid(where, f'expected "owner" or "team", got {_show(value)}')
                changes[key] = value
            elif key == "business_days_only":
                if not isinstance(value, bool):
                    raise _Invalid(where, f"expected true or false, got {_show(value)}")
                changes[key] = value
            elif key == "min_share":
                changes.update(self.min_share(where, value))
            elif key == "pace":
                changes[key] = self.pace(where, value)
        return changes

    # the volume kind and starts_on

    def stage(self, path: str, value: Any) -> str:
        from services.lifecycle.domain.stages import STAGES

        if not isinstance(value, str) or value not in STAGES:
            raise _Invalid(path, f"unknown stage {_show(value)}: expected one of {', '.join(STAGES)}")
        return value

    def period(self, path: str, value: Any) -> Any:
        if isinstance(value, str):
            if value not in PERIODS:
                raise _Invalid(path, f'unknown period {_show(value)}: expected "day", "week", "month" '
                                     "or a span { from = 2026-11-02, to = 2026-11-20 }")
            return value
        if isinstance(value, dict):
            self._unknown_keys(path, value, ("from", "to"))
            for key in ("from", "to"):
                if key not in value:
                    raise _Invalid(f"{path}.{key}", "is required in a span (a date like 2026-11-02)")
            first, last = self.holiday(f"{path}.from", value["from"]), self.holiday(f"{path}.to", value["to"])
            if last < first:
                raise _Invalid(f"{path}.to", f"the span ends ({last}) before it starts ({first})")
            return (first, last)
        raise _Invalid(path, f'expected "day", "week", "month" or a span table, got {_show(value)}')

    def counts(self, path: str, value: Any) -> tuple[str, str]:
        from services.common.envelope import EVENT_TYPES

        if isinstance(value, str):
            if value not in EVENT_TYPES:
                raise _Invalid(path, f"unknown event type {_show(value)}: expected one of {', '.join(EVENT_TYPES)}")
            return ("type", value)
        if isinstance(value, dict):
            self._unknown_keys(path, value, ("stage",))
            if "stage" not in value:
                raise _Invalid(path, 'expected an event type or { stage = "mql" }')
            return ("stage", self.stage(f"{path}.stage", value["stage"]))
        raise _Invalid(path, f'expected an event type like "meeting.booked" or {{ stage = "mql" }}, got {_show(value)}')

    def min_share(self, path: str, value: Any) -> dict[str, Any]:
        table = self._table(path, value)
        self._unknown_keys(path, table, ("fit",) + ALL_SCOPE_KEYS + ("at_least",))
        attrs = [key for key in table if key != "at_least"]
        if len(attrs) != 1 or "at_least" not in table:
            raise _Invalid(path, 'expected one attribute and its share, e.g. { fit = "good", at_least = 0.5 }')
        wanted = table[attrs[0]]
        if not isinstance(wanted, str) or not wanted:
            raise _Invalid(f"{path}.{attrs[0]}", f"expected a value, got {_show(wanted)}")
        share = table["at_least"]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise _Invalid(f"{path}.at_least", f"expected a number from 0 to 1, got {_show(share)}")
        return {"share_attr": attrs[0], "fit": wanted, "min_fit_share": float(share)}

    def pace(self, path: str, value: Any) -> Any:
        if value == "even":
            return "even"
        if not isinstance(value, list) or not value:
            raise _Invalid(path, f'expected "even" or a list like [{{ day = 10, share = 0.4 }}], got {_show(value)}')
        points = []
        for index, item in enumerate(value):
            where = f"{path}[{index}]"
            table = self._table(where, item)
            self._unknown_keys(where, table, ("day", "share"))
            day, share = table.get("day"), table.get("share")
            if isinstance(day, bool) or not isinstance(day, int) or day < 1:
                raise _Invalid(f"{where}.day", f"expected a business day of the period (1, 2, ...), got {_show(day)}")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                raise _Invalid(f"{where}.share", f"expected a share of the target above 0 and at most 1, got {_show(share)}")
            points.append((day, float(share)))
        days = [day for day, _ in points]
        if days != sorted(set(days)):
            raise _Invalid(path, "checkpoints must name increasing business days, each once")
        return tuple(points)

    def check_volume(self, path: str, settings: SlaSettings) -> None:
        if settings.business_days_only and settings.period != "day":
            raise _Invalid(f"{path}.business_days_only", 'applies to period = "day" only')
        if settings.pace is not None and settings.period == "day":
            raise _Invalid(f"{path}.pace", "a day has no pace inside it: use a week, a month or a span")

    def scope(self, path: str, value: Any, allowed: tuple[str, ...]) -> Scope:
        table = self._table(path, value)
        self._unknown_keys(path, table, allowed)
        return Scope(**{key: frozenset(self.strings(f"{path}.{key}", values)) for key, values in table.items()})

    def overrides(self, path: str, value: Any, kind: str, calendars: Mapping[str, BusinessCalendar]) -> tuple[Override, ...]:
        when_keys = _OVERRIDE_WHEN_KEYS[kind]
        if not isinstance(value, list):
            raise _Invalid(path, f"expected [[{path}]] tables, got {_show(value)}")
        if value and not when_keys:
            raise _Invalid(path, f"{kind} has no overrides: define another SLA with kind = {kind!r} and a scope")
        result = []
        for index, item in enumerate(value):
            where = f"{path}[{index}]"
            table = self._table(where, item)
            allowed = ("target", "min_share", "pace") if kind == VOLUME else tuple(_KIND_DEFAULTS[kind])
            self._unknown_keys(where, table, ("when", "enabled", "calendar", *allowed))
            if "when" not in table:
                raise _Invalid(f"{where}.when", "is required (e.g. when = { segment = \"enterprise\" })")
            when = self.scope(f"{where}.when", table["when"], when_keys)
            changes = self.numbers(where, {k: v for k, v in table.items() if k != "when"}, kind, calendars)
            result.append(Override(when=when, changes=changes))
        return tuple(result)

    # small checks

    def strings(self, path: str, value: Any) -> list[str]:
        """One string or a non-empty list of strings."""
        if isinstance(value, str) and value:
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return list(value)
        raise _Invalid(path, f"expected a string or a list of strings, got {_show(value)}")

    def _table(self, path: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a table, got {_show(value)}")
        return value

    def _unknown_keys(self, path: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                where = f"{path}.{_key(key)}" if path else _key(key)
                raise _Invalid(where, f"unknown key (allowed: {', '.join(allowed)})")

    def _string_or_absent(self, path: str, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            raise _Invalid(path, f"expected a string, got {_show(value)}")


def _duration(path: str, value: Any) -> timedelta:
    match = _DURATION.match(value) if isinstance(value, str) and value else None
    if match is None:
        raise _Invalid(path, f'expected a duration like "1h", got {_show(value)}')
    weeks, days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def _show(value: Any) -> str:
    """A value as the policy author wrote it (TOML-ish), for error messages."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


def _settings_canonical(changes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if isinstance(value, timedelta):
            value = int(value.total_seconds())
        elif isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = [[str(part) if isinstance(part, date) else part for part in item]
                     if isinstance(item, tuple) else (str(item) if isinstance(item, date) else item)
                     for item in value]
        out[key] = value
    return out


def _rule_canonical(rule: SlaRule) -> dict[str, Any]:
    settings = {name: getattr(rule.settings, name) for name in SlaSettings.__slots__
                if name not in NEW_SETTINGS or getattr(rule.settings, name) != NEW_SETTINGS[name]}
    return {
        "name": rule.name,
        "kind": rule.kind,
        "scope": rule.scope.to_canonical(),
        "settings": _settings_canonical(settings),
        "overrides": [
            {"when": o.when.to_canonical(), "changes": _settings_canonical(o.changes)} for o in rule.overrides
        ],
    }


def _calendar_canonical(calendar: BusinessCalendar) -> dict[str, Any]:
    return {
        "timezone": calendar.timezone,
        "working_days": sorted(calendar.working_days),
        "opens": calendar.opens.strftime("%H:%M"),
        "closes": "24:00" if calendar.closes == time(0) else calendar.closes.strftime("%H:%M"),
        "holidays": sorted(day.isoformat() for day in calendar.holidays),
    }


# --- where in the file a field is -----------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_BARE_OR_QUOTED = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY_LINE = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_PATH_TOKEN = re.compile(r"\"[^\"]*\"|'[^']*'|\[\d+\]|[A-Za-z0-9_-]+")


def _tokens(dotted: str) -> tuple[str, ...]:
    """`slas."a b".overrides[1].when` -> ("slas", "a b", "overrides", "[1]", "when")."""
    return tuple(t[1:-1] if t[:1] in "\"'" else t for t in _PATH_TOKEN.findall(dotted))


def _find_line(text: str, field_path: str) -> int | None:
    """Best effort: the line defining `field_path`, or its nearest enclosing key or table.

    tomllib reports positions only for syntax errors, so this maps `[table]` headers and
    `key =` lines to paths (each `[[array]]` entry gets its index) and takes the longest prefix.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    array_counts: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _tokens(header.group(2))
            if header.group(1) == "[[":
                index = array_counts.get(table, 0)
                array_counts[table] = index + 1
                table = (*table, f"[{index}]")
            lines.setdefault(table, number)
            continue
        key = _KEY_LINE.match(line)
        if key:
            lines.setdefault(table + _tokens(key.group(1)), number)
    wanted = _tokens(field_path)
    for size in range(len(wanted), 0, -1):
        if wanted[:size] in lines:
            return lines[wanted[:size]]
    return None


_DEFAULT_POLICY = parse_policy(
    resources.files(__package__).joinpath("default_policy.toml").read_text("utf-8"), BUILTIN_SOURCE
)
