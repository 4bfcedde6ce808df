"""The event envelope of contract §1–2: the one type every service passes around, and its validation.

Validation is pure: `parse_event` takes the decoded JSON value and (optionally) the time to judge
"too far in the future" against, and either returns an `Event` or raises `InvalidEvent` naming
the field and the rule it broke.

`PAYLOAD_RULES` is the single statement of the per-type payload rules: `parse_event` enforces it
and `services/ingest/openapi.py` generates the published JSON Schema from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from services.common.timefmt import format_utc_precise, parse_rfc3339

MAX_ID_LEN = 128
MAX_SOURCE_LEN = 64
MAX_FUTURE_SKEW = timedelta(minutes=5)

# RFC 3339 date-time as accepted here, for the JSON Schema: parse_rfc3339's shape with the field
# ranges it checks afterwards. Only day-of-month validity (February 30) and the edges of years
# 0001/9999 are left to parse_event. It also refuses two things parse_rfc3339's regex lets
# through: non-ASCII digits and a trailing newline.
RFC3339_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
# The Unicode White_Space characters. A required text field made only of these is empty. Spelled
# out (not str.isspace, which adds U+001C–U+001F) so the JSON Schema pattern means the same.
WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


class InvalidEvent(ValueError):
    """An envelope that breaks the contract. `field` is a dotted path (`payload.score`); empty
    when the event as a whole is wrong (not a JSON object)."""

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


# Payload field kinds, named as their JSON Schema types.
TEXT, INTEGER, NUMBER, BOOLEAN, TIMESTAMP = "string", "integer", "number", "boolean", "date-time"
FIT_VALUES = ("good", "poor", "unknown")


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One known payload field. A required TEXT must not be empty (only whitespace counts as
    empty); an optional one may be any string. An optional field sent as null counts as absent.
    `examples` documents open value lists (the contract's "..."); only `choices` is enforced."""

    kind: str
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    examples: tuple[str, ...] = ()


def _req(kind: str, **kw: Any) -> FieldRule:
    return FieldRule(kind, required=True, **kw)


def _opt(kind: str, **kw: Any) -> FieldRule:
    return FieldRule(kind, required=False, **kw)


_FIT = _opt(TEXT, choices=FIT_VALUES)

# Contract §2. Fields not listed are kept untouched; listed ones are type-checked when present.
PAYLOAD_RULES: dict[str, dict[str, FieldRule]] = {
    "lead.created": {
        "channel": _opt(TEXT, examples=("website", "event", "referral", "outbound")),
        "segment": _opt(TEXT, examples=("smb", "midmarket", "enterprise")),
        "email": _opt(TEXT), "company": _opt(TEXT), "campaign": _opt(TEXT), "country": _opt(TEXT),
    },
    "lead.activity": {
        "kind": _req(TEXT, examples=("download", "page_view", "webinar", "email_click")),
        "asset": _opt(TEXT), "helpful": _opt(BOOLEAN),
    },
    "lead.scored": {"score": _req(INTEGER), "fit": _FIT},
    "lead.information_qualified": {},
    "lead.marketing_qualified": {"fit": _FIT},
    "lead.assigned": {"owner": _req(TEXT), "team": _req(TEXT)},
    "lead.accepted": {"owner": _opt(TEXT)},
    "lead.rejected": {"reason": _req(TEXT)},
    "contact.attempted": {"channel": _req(TEXT, examples=("phone", "email", "linkedin")), "owner": _opt(TEXT)},
    "contact.connected": {"channel": _req(TEXT, examples=("phone", "email", "linkedin")), "owner": _opt(TEXT)},
    "meeting.booked": {"owner": _opt(TEXT), "scheduled_for": _opt(TIMESTAMP)},
    "lead.sales_qualified": {},
    # The contract puts no bound on amount (only on revenue), so none is enforced here.
    "opportunity.created": {"opportunity_id": _req(TEXT), "amount": _opt(NUMBER)},
    "deal.won": {"revenue": _req(NUMBER, minimum=0), "currency": _opt(TEXT)},
    "deal.lost": {"reason": _req(TEXT)},
    "lead.recycled": {"reason": _req(TEXT, examples=("no_response",))},
    "lead.disqualified": {"reason": _req(TEXT, examples=("no_response",))},
}
EVENT_TYPES: tuple[str, ...] = tuple(PAYLOAD_RULES)


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


def _bounded_str(obj: Mapping[str, Any], name: str, max_len: int) -> str:
    value = obj.get(name)
    if value is None:
        raise InvalidEvent(name, "is required")
    if not isinstance(value, str):
        raise InvalidEvent(name, f"must be a string, got {_json_kind(value)}")
    if not 1 <= len(value) <= max_len:
        raise InvalidEvent(name, f"must be 1 to {max_len} characters, got {len(value)}")
    if not value.isascii():
        # A lone surrogate (JSON "\ud800") decodes in Python but has no UTF-8 form: it could be
        # neither a Kafka key nor a database value.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEvent(name, "must be valid Unicode text (no lone surrogates)") from None
    if "\x00" in value:
        raise InvalidEvent(name, "must not contain the NUL character (U+0000)")
    return value


def _storable_text_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first string (key or value) in a payload that PostgreSQL's jsonb could not store:
    one with a NUL character or a lone surrogate. Accepting it would jam the event store."""
    if isinstance(value, str):
        if "\x00" in value:
            return path, "must not contain the NUL character (U+0000)"
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path, "must be valid Unicode text (no lone surrogates)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _storable_text_problem(key, path) or _storable_text_problem(item, f"{path}.{key}")
            if problem:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = _storable_text_problem(item, f"{path}[{index}]")
            if problem:
                return problem
    return None


def _parse_time(path: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(path, f"must be an RFC 3339 string, got {_json_kind(value)}")
    # parse_rfc3339's \d also matches non-ASCII digits and its $ accepts a trailing newline.
    if not value.isascii() or value.endswith("\n"):
        raise InvalidEvent(path, "must be an RFC 3339 timestamp with offset, e.g. 2026-11-02T08:00:00Z")
    try:
        return parse_rfc3339(value)
    except (ValueError, OverflowError) as exc:  # OverflowError: a year-9999 time past UTC's range
        raise InvalidEvent(path, str(exc) if isinstance(exc, ValueError) else "is out of range") from None


def _checked_field(path: str, rule: FieldRule, value: Any) -> Any:
    """The value to keep (an integral float becomes an int), or InvalidEvent."""
    kind = rule.kind
    if kind == TEXT:
        if not isinstance(value, str):
            raise InvalidEvent(path, f"must be a string, got {_json_kind(value)}")
        if rule.required and not value.strip(WHITESPACE):
            raise InvalidEvent(path, "must not be empty")
        if rule.choices is not None and value not in rule.choices:
            raise InvalidEvent(path, f"must be one of {', '.join(rule.choices)}, got {value[:80]!r}")
    elif kind == INTEGER:
        # JSON has one number type: 87.0 is the integer 87 (as JSON Schema also says).
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidEvent(path, f"must be an integer, got {_json_kind(value)}")
    elif kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidEvent(path, f"must be a number, got {_json_kind(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidEvent(path, "must be a finite number")
        if rule.minimum is not None and value < rule.minimum:
            raise InvalidEvent(path, f"must be at least {rule.minimum:g}, got {value}")
    elif kind == BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidEvent(path, f"must be a boolean, got {_json_kind(value)}")
    elif kind == TIMESTAMP:
        _parse_time(path, value)  # checked, kept as sent
    return value


def parse_event(obj: Any, *, now: datetime | None = None) -> Event:
    """Validate one decoded JSON value against contract §1–2 and return the normalised Event.

    `obj` comes from a strict JSON decoder (no NaN/Infinity). The payload is kept as sent,
    unknown fields included; only an integral float in an integer field becomes an int. Unknown
    top-level fields are ignored. `now` (aware) enables the ingest rule that refuses events more
    than 5 minutes in the future; replay and the lifecycle pass None because the log is already
    accepted.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent("", f"an event must be a JSON object, got {_json_kind(obj)}")
    event_id = _bounded_str(obj, "event_id", MAX_ID_LEN)
    lead_id = _bounded_str(obj, "lead_id", MAX_ID_LEN)
    etype = obj.get("type")
    if etype is None:
        raise InvalidEvent("type", "is required")
    if not isinstance(etype, str):
        raise InvalidEvent("type", f"must be a string, got {_json_kind(etype)}")
    rules = PAYLOAD_RULES.get(etype)
    if rules is None:
        raise InvalidEvent("type", f"unknown event type {etype[:80]!r}")
    raw_time = obj.get("occurred_at")
    if raw_time is None:
        raise InvalidEvent("occurred_at", "is required")
    occurred_at = _parse_time("occurred_at", raw_time)
    if now is not None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("parse_event: `now` must be an aware datetime")
        if occurred_at > now + MAX_FUTURE_SKEW:
            raise InvalidEvent("occurred_at", "is more than 5 minutes in the future")
    source = _bounded_str(obj, "source", MAX_SOURCE_LEN)
    payload = obj.get("payload")
    if payload is None:
        raise InvalidEvent("payload", "is required (use {} for none)")
    if not isinstance(payload, dict):
        raise InvalidEvent("payload", f"must be an object, got {_json_kind(payload)}")
    problem = _storable_text_problem(payload, "payload")
    if problem:
        raise InvalidEvent(*problem)
    for name, rule in rules.items():
        value = payload.get(name)
        if value is None:
            if rule.required:
                raise InvalidEvent(f"payload.{name}", f"is required for {etype}")
            continue
        kept = _checked_field(f"payload.{name}", rule, value)
        if kept is not value:
            payload = {**payload, name: kept}  # a copy: the caller's object stays as it was
    return Event(event_id, lead_id, etype, occurred_at, source, payload)
