"""The SLA monitor's adapters between Kafka records and the domain: a leadflow.lifecycle record in,
a `Transition` out; an `Emission` in, a leadflow.sla record (Avro `sla_outcome`) and its key out.

Pure functions, no I/O; shared by the service, `leadflow backtest` and the tests.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote

from services.common.avro_codec import AvroCodecError, event_from_avro
from services.common.kafka import lead_key
from services.lifecycle.domain import UNKNOWN_FIT, Transition
from services.sla_monitor.domain import Clock, Emission, Window
from services.sla_monitor.domain.policy import (
    CLOSED_LOOP_FEEDBACK,
    CONTACT_ATTEMPTS,
    MARKETING_WEEKLY_VOLUME,
    REP_MONTHLY_VOLUME,
    SALES_ACCEPTANCE,
    SPEED_TO_LEAD,
    VOLUME,
    Policy,
)

# The side of the handoff that owns each SLA kind (docs/domain.md, the seeds' table): the `team`
# of a clock whose lead has no team yet, and of every window.
OWNER_TEAM: dict[str, str] = {
    SPEED_TO_LEAD: "sales",
    SALES_ACCEPTANCE: "sales",
    CONTACT_ATTEMPTS: "sales",
    CLOSED_LOOP_FEEDBACK: "sales",
    MARKETING_WEEKLY_VOLUME: "marketing",
    REP_MONTHLY_VOLUME: "marketing",
    VOLUME: "marketing",  # volume goals are what marketing (or a joint campaign) delivers
}


def owner_team(kind: str) -> str:
    return OWNER_TEAM.get(kind, "sales")


def policy_teams(policy: Policy) -> dict[str, str]:
    """SLA name -> the owning team of its kind, for every SLA of the policy."""
    return {rule.name: owner_team(rule.kind) for rule in policy.rules}


def transition_from_avro(record: Mapping[str, Any]) -> Transition:
    """The `Transition` a lifecycle record carries (schemas/lifecycle_record.avsc).

    The record is what the lifecycle service published for an applied event: never a duplicate,
    so `version` is set. Raises AvroCodecError for a record whose event payload is not JSON.
    """
    event = event_from_avro(record["event"])
    if event.lead_id != record["lead_id"] or event.event_id != record["event_id"]:
        raise AvroCodecError(
            f"lifecycle record {record['event_id']!r}: lead_id/event_id differ from its event's")
    return Transition(
        record["lead_id"], record["event_id"], record["version"], record["from_stage"], record["to_stage"],
        record["ignored"], event, record.get("channel"), record.get("segment"),
        record.get("fit") or UNKNOWN_FIT, record.get("owner"), record.get("team"),
    )


# What quote(value, safe="") leaves as it is: ids made only of these need no escaping (nearly all).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _part(value: str) -> str:
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


def clock_id(key: tuple[str, str, str]) -> str:
    """A clock's stable id: SLA, lead and starting event id, each percent-escaped, joined by '/'."""
    sla, lead_id, start_event_id = key
    return f"{_part(sla)}/{_part(lead_id)}/{_part(start_event_id)}"


def window_id(key: tuple[str, str, str]) -> str:
    """A window's stable id: SLA, '@' and the owner ('' for a team-wide window), and its start."""
    sla, owner, start = key
    return f"{_part(sla)}/@{_part(owner)}/{start}"


def subject_id(emission: Emission) -> str:
    return clock_id(emission.clock.key) if emission.clock is not None else window_id(emission.window.key)  # type: ignore[union-attr]


def window_key_bytes(window: Window) -> bytes:
    """The Kafka key of a window's records: its SLA, and `/owner` for a per-owner window."""
    name = window.sla if window.owner is None else f"{window.sla}/{window.owner}"
    return name.encode("utf-8")


def emission_key(emission: Emission) -> bytes:
    if emission.clock is not None:
        return lead_key(emission.clock.lead_id)
    return window_key_bytes(emission.window)  # type: ignore[arg-type]


def outcome_record(emission: Emission, emitted_at: datetime) -> dict[str, Any]:
    """The leadflow.sla record (schemas/sla_outcome.avsc) of one emission; `emitted_at` is the
    clock time of the emission (the wall clock in the service)."""
    clock: Clock | None = emission.clock
    if clock is not None:
        has_attempts = clock.required is not None
        return {
            "kind": emission.kind,
            "sla": clock.sla,
            "lead_id": clock.lead_id,
            "scope": {},
            "clock_id": clock_id(clock.key),
            "outcome": clock.outcome or "open",
            "started_at": clock.started_at,
            "due_at": clock.due_at,
            "stopped_at": clock.stopped_at,
            "window_start": None,
            "window_end": None,
            "count": None,
            "target": None,
            "fit_share": None,
            "attempts": clock.attempts if has_attempts else None,
            "required": clock.required,
            "corrected": clock.corrected,
            "policy_version": emission.policy_version,
            "team": clock.team,
            "emitted_at": emitted_at,
            "late": emission.late,
        }
    window = emission.window
    assert window is not None
    return {
        "kind": emission.kind,
        "sla": window.sla,
        "lead_id": None,
        "scope": window.scope,
        "clock_id": window_id(window.key),
        "outcome": window.outcome or "open",
        "started_at": window.window_start,
        "due_at": window.window_end,
        "stopped_at": None,
        "window_start": window.window_start,
        "window_end": window.window_end,
        "count": window.count,
        "target": window.target,
        "fit_share": window.fit_share if window.weekly else None,
        "attempts": None,
        "required": None,
        "corrected": window.corrected,
        "policy_version": emission.policy_version,
        "team": None,
        "emitted_at": emitted_at,
        "late": emission.late,
    }
