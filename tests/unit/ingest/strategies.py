"""Hypothesis strategies for raw events (decoded JSON, before parse_event): valid ones of every
type, with unknown payload fields of any JSON shape, and the wrong-kind values for a field."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from services.common.envelope import (
    BOOLEAN,
    EVENT_TYPES,
    INTEGER,
    MAX_ID_LEN,
    MAX_SOURCE_LEN,
    NUMBER,
    PAYLOAD_RULES,
    TEXT,
    TIMESTAMP,
    WHITESPACE,
    FieldRule,
)

# PostgreSQL's jsonb cannot hold NUL or lone surrogates, so parse_event refuses them
# (tests/unit/ingest/test_storable_text.py); every other character is fair game.
_STORABLE = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


def text(**kwargs: Any) -> st.SearchStrategy[str]:
    return st.text(alphabet=_STORABLE, **kwargs)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text(max_size=8), children, max_size=4),
    max_leaves=12,
)

# Offsets in whole minutes within RFC 3339's ±23:59.
_offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware_times = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=_offsets)


def rfc3339(dt: datetime) -> str:
    """An RFC 3339 string for an aware datetime, keeping its offset (Z for UTC)."""
    text = dt.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


rfc3339_times = aware_times.map(rfc3339)


def valid_values(rule: FieldRule) -> st.SearchStrategy[Any]:
    if rule.choices is not None:
        return st.sampled_from(rule.choices)
    if rule.kind == TEXT:
        strings = text(max_size=20)
        return strings.filter(lambda s: s.strip(WHITESPACE)) if rule.required else strings
    if rule.kind == INTEGER:
        return st.integers()
    if rule.kind == NUMBER:
        low = rule.minimum
        return st.integers(min_value=None if low is None else int(low)) | st.floats(
            min_value=low, allow_nan=False, allow_infinity=False
        )
    if rule.kind == BOOLEAN:
        return st.booleans()
    if rule.kind == TIMESTAMP:
        return rfc3339_times
    raise AssertionError(f"no strategy for kind {rule.kind}")


_finite_floats = st.floats(allow_nan=False, allow_infinity=False)

# JSON values of another kind than the field's (null is left out: for an optional field it means absent).
_WRONG_KINDS: dict[str, st.SearchStrategy[Any]] = {
    TEXT: st.booleans() | st.integers() | _finite_floats | st.lists(text(), max_size=2)
    | st.dictionaries(text(max_size=3), text(max_size=3), max_size=2),
    INTEGER: st.booleans() | text() | _finite_floats.filter(lambda x: not x.is_integer())
    | st.lists(st.integers(), max_size=2) | st.dictionaries(text(max_size=3), st.integers(), max_size=2),
    NUMBER: st.booleans() | text() | st.lists(st.integers(), max_size=2)
    | st.dictionaries(text(max_size=3), st.integers(), max_size=2),
    BOOLEAN: st.integers() | _finite_floats | text() | st.lists(st.booleans(), max_size=2),
    TIMESTAMP: st.booleans() | st.integers() | _finite_floats | st.lists(text(), max_size=2),
}


def wrong_kind_values(rule: FieldRule) -> st.SearchStrategy[Any]:
    return _WRONG_KINDS[rule.kind]


def payloads(etype: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid payload: every required field, some optional ones, and unknown extra fields."""
    rules = PAYLOAD_RULES[etype]
    required = {name: valid_values(rule) for name, rule in rules.items() if rule.required}
    optional = {name: valid_values(rule) | st.none() for name, rule in rules.items() if not rule.required}
    extra = st.dictionaries(text(max_size=10).filter(lambda k: k not in rules), json_values, max_size=3)
    return st.tuples(st.fixed_dictionaries(required, optional=optional), extra).map(lambda p: {**p[1], **p[0]})


def raw_events(types: tuple[str, ...] = EVENT_TYPES) -> st.SearchStrategy[dict[str, Any]]:
    """A valid raw event (decoded JSON) of any of `types`."""
    return st.sampled_from(types).flatmap(
        lambda etype: st.fixed_dictionaries({
            "event_id": text(min_size=1, max_size=MAX_ID_LEN),
            "lead_id": text(min_size=1, max_size=MAX_ID_LEN),
            "type": st.just(etype),
            "occurred_at": rfc3339_times,
            "source": text(min_size=1, max_size=MAX_SOURCE_LEN),
            "payload": payloads(etype),
        })
    )
