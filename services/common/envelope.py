"""The event envelope of contract §1–2: the one type every service passes around, and its validation.

Validation is pure: `parse_event` takes the decoded JSON value and (optionally) the time to judge
"too far in the future" against, and either returns an `Event` or raises `InvalidEvent` naming
the field and the rule it broke.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from services.common.timefmt import format_utc_precise, parse_rfc3339

MAX_ID_LEN = 128
MAX_SOURCE_LEN = 64
MAX_FUTURE_SKEW = timedelta(minutes=5)


class InvalidEvent(ValueError):
    """An envelope that breaks the contract. `field` is a dotted path (`payload.score`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    lead_id: str
    type: str
    occurred_at: datetime  # aware, UTC
    source: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The normalised envelope (UTC time); unknown payload fields are kept as sent."""
        return {
            "event_id": self.event_id,
            "lead_id": self.lead_id,
            "type": self.type,
            "occurred_at": format_utc_precise(self.occurred_at),
            "source": self.source,
            "payload": dict(self.payload),
        }


# Payload field kinds. "str" is a non-empty string when required, any string when optional.
_STR, _INT, _NUM, _BOOL, _TIME = "str", "int", "num", "bool", "time"
_FIT_VALUES = ("good", "poor", "unknown")


@dataclass(frozen=True, slots=True)
class _Field:
    kind: str
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None


def _req(kind: str, **kw: Any) -> _Field:
    return _Field(kind, required=True, **kw)


def _opt(kind: str, **kw: Any) -> _Field:
    return _Field(kind, required=False, **kw)


_FIT = _opt(_STR, choices=_FIT_VALUES)

# Contract §2. Fields not listed are kept untouched; listed ones are type-checked when present.
PAYLOAD_RULES: dict[str, dict[str, _Field]] = {
    "lead.created": {
        "channel": _opt(_STR), "segment": _opt(_STR), "email": _opt(_STR),
        "company": _opt(_STR), "campaign": _opt(_STR), "country": _opt(_STR),
    },
    "lead.activity": {"kind": _req(_STR), "asset": _opt(_STR), "helpful": _opt(_BOOL)},
    "lead.scored": {"score": _req(_INT), "fit": _FIT},
    "lead.information_qualified": {},
    "lead.marketing_qualified": {"fit": _FIT},
    "lead.assigned": {"owner": _req(_STR), "team": _req(_STR)},
    "lead.accepted": {"owner": _opt(_STR)},
    "lead.rejected": {"reason": _req(_STR)},
    "contact.attempted": {"channel": _req(_STR), "owner": _opt(_STR)},
    "contact.connected": {"channel": _req(_STR), "owner": _opt(_STR)},
    "meeting.booked": {"owner": _opt(_STR), "scheduled_for": _opt(_TIME)},
    "lead.sales_qualified": {},
    "opportunity.created": {"opportunity_id": _req(_STR), "amount": _opt(_NUM, minimum=0)},
    "deal.won": {"revenue": _req(_NUM, minimum=0), "currency": _opt(_STR)},
    "deal.lost": {"reason": _req(_STR)},
    "lead.recycled": {"reason": _req(_STR)},
    "lead.disqualified": {"reason": _req(_STR)},
}
EVENT_TYPES: tuple[str, ...] = tuple(PAYLOAD_RULES)


def _bounded_str(obj: Mapping[str, Any], name: str, max_len: int) -> str:
    if name not in obj or obj[name] is None:
        raise InvalidEvent(name, "is required")
    value = obj[name]
    if not isinstance(value, str):
        raise InvalidEvent(name, f"must be a string, got {_json_kind(value)}")
    if not 1 <= len(value) <= max_len:
        raise InvalidEvent(name, f"must be 1 to {max_len} characters, got {len(value)}")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_field(path: str, rule: _Field, value: Any) -> None:
    kind = rule.kind
    if kind == _STR:
        if not isinstance(value, str):
            raise InvalidEvent(path, f"must be a string, got {_json_kind(value)}")
        if rule.required and not value.strip():
            raise InvalidEvent(path, "must not be empty")
        if rule.choices is not None and value not in rule.choices:
            raise InvalidEvent(path, f"must be one of {', '.join(rule.choices)}, got {value!r}")
    elif kind == _INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidEvent(path, f"must be an integer, got {_json_kind(value)}")
    elif kind == _NUM:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidEvent(path, f"must be a number, got {_json_kind(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidEvent(path, "must be a finite number")
        if rule.minimum is not None and value < rule.minimum:
            raise InvalidEvent(path, f"must be at least {rule.minimum:g}, got {value}")
    elif kind == _BOOL:
        if not isinstance(value, bool):
            raise InvalidEvent(path, f"must be a boolean, got {_json_kind(value)}")
    elif kind == _TIME:
        if not isinstance(value, str):
            raise InvalidEvent(path, f"must be an RFC 3339 string, got {_json_kind(value)}")
        try:
            parse_rfc3339(value)
        except ValueError as exc:
            raise InvalidEvent(path, str(exc)) from None


def parse_event(obj: Any, *, now: datetime | None = None) -> Event:
    """Validate one decoded JSON value against contract §1–2 and return the normalised Event.

    `now` (aware) enables the ingest rule that refuses events more than 5 minutes in the future;
    replay and the lifecycle pass None because the log is already accepted.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent("", f"an event must be a JSON object, got {_json_kind(obj)}")
    event_id = _bounded_str(obj, "event_id", MAX_ID_LEN)
    lead_id = _bounded_str(obj, "lead_id", MAX_ID_LEN)
    if "type" not in obj or obj["type"] is None:
        raise InvalidEvent("type", "is required")
    etype = obj["type"]
    if not isinstance(etype, str):
        raise InvalidEvent("type", f"must be a string, got {_json_kind(etype)}")
    rules = PAYLOAD_RULES.get(etype)
    if rules is None:
        raise InvalidEvent("type", f"unknown event type {etype[:80]!r}")
    if "occurred_at" not in obj or obj["occurred_at"] is None:
        raise InvalidEvent("occurred_at", "is required")
    raw_time = obj["occurred_at"]
    if not isinstance(raw_time, str):
        raise InvalidEvent("occurred_at", f"must be an RFC 3339 string, got {_json_kind(raw_time)}")
    try:
        occurred_at = parse_rfc3339(raw_time)
    except ValueError as exc:
        raise InvalidEvent("occurred_at", str(exc)) from None
    if now is not None and occurred_at > now + MAX_FUTURE_SKEW:
        raise InvalidEvent("occurred_at", "is more than 5 minutes in the future")
    source = _bounded_str(obj, "source", MAX_SOURCE_LEN)
    if "payload" not in obj or obj["payload"] is None:
        raise InvalidEvent("payload", "is required (use {} for none)")
    payload = obj["payload"]
    if not isinstance(payload, dict):
        raise InvalidEvent("payload", f"must be an object, got {_json_kind(payload)}")
    for name, rule in rules.items():
        value = payload.get(name)
        if value is None:
            if rule.required:
                raise InvalidEvent(f"payload.{name}", f"is required for {etype}")
            continue
        _check_field(f"payload.{name}", rule, value)
    return Event(event_id, lead_id, etype, occurred_at, source, payload)
