"""parse_event against contract §1–2: every type valid and invalid, the envelope rules, and the
round trips (to_json, Avro) of any valid event. Every refusal must name the field."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.avro_codec import AvroCodec, event_from_avro, event_to_avro
from services.common.envelope import (
    EVENT_TYPES,
    FIT_VALUES,
    MAX_FUTURE_SKEW,
    PAYLOAD_RULES,
    Event,
    InvalidEvent,
    parse_event,
)

from .samples import BAD_OCCURRED_AT, FULL_PAYLOADS, INVALID_PAYLOADS, envelope
from .strategies import raw_events, valid_values, wrong_kind_values

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)

# Contract §2, written out here (not read from PAYLOAD_RULES) so the rules are checked against it.
CONTRACT_REQUIRED: dict[str, set[str]] = {
    "lead.created": set(), "lead.activity": {"kind"}, "lead.scored": {"score"},
    "lead.information_qualified": set(), "lead.marketing_qualified": set(), "lead.assigned": {"owner", "team"},
    "lead.accepted": set(), "lead.rejected": {"reason"}, "contact.attempted": {"channel"},
    "contact.connected": {"channel"}, "meeting.booked": set(), "lead.sales_qualified": set(),
    "opportunity.created": {"opportunity_id"}, "deal.won": {"revenue"}, "deal.lost": {"reason"},
    "lead.recycled": {"reason"}, "lead.disqualified": {"reason"},
}
CONTRACT_OPTIONAL: dict[str, set[str]] = {
    "lead.created": {"channel", "segment", "email", "company", "campaign", "country"},
    "lead.activity": {"asset", "helpful"}, "lead.scored": {"fit"}, "lead.marketing_qualified": {"fit"},
    "lead.accepted": {"owner"}, "contact.attempted": {"owner"}, "contact.connected": {"owner"},
    "meeting.booked": {"owner", "scheduled_for"}, "opportunity.created": {"amount"}, "deal.won": {"currency"},
}

def refusal(raw: Any, **kw: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, **kw)
    return caught.value


# --- the rules themselves ---------------------------------------------------------------------


def test_event_types_are_exactly_the_contract_types():
    assert set(EVENT_TYPES) == set(CONTRACT_REQUIRED) == set(FULL_PAYLOADS)
    assert len(EVENT_TYPES) == 17


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_payload_rules_require_and_know_the_contract_fields(etype):
    rules = PAYLOAD_RULES[etype]
    assert {n for n, r in rules.items() if r.required} == CONTRACT_REQUIRED[etype]
    assert {n for n, r in rules.items() if not r.required} == CONTRACT_OPTIONAL.get(etype, set())


def test_typed_fields_follow_the_contract():
    assert PAYLOAD_RULES["lead.scored"]["score"].kind == "integer"
    assert PAYLOAD_RULES["lead.activity"]["helpful"].kind == "boolean"
    assert (PAYLOAD_RULES["deal.won"]["revenue"].kind, PAYLOAD_RULES["deal.won"]["revenue"].minimum) == ("number", 0)
    assert PAYLOAD_RULES["lead.scored"]["fit"].choices == PAYLOAD_RULES["lead.marketing_qualified"]["fit"].choices
    assert FIT_VALUES == ("good", "poor", "unknown")


# --- every type: valid ------------------------------------------------------------------------


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_full_valid_event_of_every_type_is_accepted_as_sent(etype):
    event = parse_event(envelope(etype))
    assert event == Event("e1", "L1", etype, datetime(2026, 11, 2, 8, tzinfo=timezone.utc), "hubspot",
                          FULL_PAYLOADS[etype])


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_minimal_valid_event_of_every_type_has_only_the_required_fields(etype):
    payload = {name: FULL_PAYLOADS[etype][name] for name in CONTRACT_REQUIRED[etype]}
    assert parse_event(envelope(etype, payload)).payload == payload


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_unknown_payload_fields_are_kept_exactly(etype):
    extra = {"utm": {"source": "ads", "ids": [1, 2.5, None]}, "tags": [], "n": 10**25, "flag": False, "x": None}
    payload = {**FULL_PAYLOADS[etype], **extra}
    event = parse_event(envelope(etype, payload))
    assert event.payload == payload
    assert list(event.payload) == list(payload)


@pytest.mark.parametrize("etype", [t for t in EVENT_TYPES if CONTRACT_OPTIONAL.get(t)])
def test_optional_fields_sent_as_null_count_as_absent(etype):
    payload = {**{n: FULL_PAYLOADS[etype][n] for n in CONTRACT_REQUIRED[etype]},
               **{n: None for n in CONTRACT_OPTIONAL[etype]}}
    assert parse_event(envelope(etype, payload)).payload == payload


@pytest.mark.parametrize(
    ("etype", "payload"),
    [
        ("deal.won", {"revenue": 0}),
        ("deal.won", {"revenue": 0.0}),
        ("deal.won", {"revenue": 10**30}),
        ("lead.scored", {"score": -5}),
        ("lead.scored", {"score": 0, "fit": "unknown"}),
        ("opportunity.created", {"opportunity_id": "o", "amount": -250}),  # no bound in the contract
        ("lead.created", {"email": "", "channel": "trade_show"}),  # optional text may be empty; lists are open
        ("lead.activity", {"kind": "podcast_listen", "helpful": False}),
        ("contact.attempted", {"channel": "carrier_pigeon"}),
        ("meeting.booked", {"scheduled_for": "2026-11-05t14:00:00.5z"}),
    ],
)
def test_edge_values_that_the_contract_allows(etype, payload):
    assert parse_event(envelope(etype, payload)).payload == payload


def test_an_integral_float_score_is_an_integer_and_the_input_is_not_changed():
    raw = envelope("lead.scored", {"score": 87.0, "fit": "good"})
    sent = copy.deepcopy(raw)
    event = parse_event(raw)
    assert event.payload == {"score": 87, "fit": "good"}
    assert type(event.payload["score"]) is int
    assert raw == sent and type(raw["payload"]["score"]) is float


# --- every type: invalid ----------------------------------------------------------------------


def test_every_type_has_invalid_cases():
    covered = {case[0] for case in INVALID_PAYLOADS}
    assert covered == set(EVENT_TYPES)
    assert all(sum(1 for case in INVALID_PAYLOADS if case[0] == t) >= 2 for t in EVENT_TYPES)


@pytest.mark.parametrize(("etype", "payload", "field", "reason"), INVALID_PAYLOADS,
                         ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(INVALID_PAYLOADS)])
def test_invalid_payload_is_refused_naming_the_field(etype, payload, field, reason):
    error = refusal(envelope(etype, payload))
    assert error.field == field
    assert reason in error.reason
    assert str(error) == f"{field}: {error.reason}"


@settings(max_examples=300)
@given(st.data())
def test_any_wrong_kind_in_any_known_field_is_refused_naming_it(data):
    etype = data.draw(st.sampled_from([t for t in EVENT_TYPES if PAYLOAD_RULES[t]]))
    name, rule = data.draw(st.sampled_from(sorted(PAYLOAD_RULES[etype].items())))
    payload = {n: data.draw(valid_values(r)) for n, r in PAYLOAD_RULES[etype].items() if r.required}
    payload[name] = data.draw(wrong_kind_values(rule))
    assert refusal(envelope(etype, payload)).field == f"payload.{name}"


# --- the envelope -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["event_id", "lead_id"])
@pytest.mark.parametrize(("value", "ok"), [("x", True), ("x" * 128, True), ("😀" * 128, True), ("", False),
                                            ("x" * 129, False), ("😀" * 129, False)])
def test_ids_are_1_to_128_characters(name, value, ok):
    if ok:
        assert getattr(parse_event(envelope(**{name: value})), name) == value
    else:
        error = refusal(envelope(**{name: value}))
        assert (error.field, error.reason) == (name, f"must be 1 to 128 characters, got {len(value)}")


@pytest.mark.parametrize(("value", "ok"), [("w", True), ("w" * 64, True), ("", False), ("w" * 65, False)])
def test_source_is_1_to_64_characters(value, ok):
    if ok:
        assert parse_event(envelope(source=value)).source == value
    else:
        error = refusal(envelope(source=value))
        assert (error.field, error.reason) == ("source", f"must be 1 to 64 characters, got {len(value)}")


@pytest.mark.parametrize("name", ["event_id", "lead_id", "type", "occurred_at", "source", "payload"])
def test_missing_or_null_envelope_field_is_required(name):
    raw = envelope()
    del raw[name]
    assert refusal(raw).field == name
    raw[name] = None
    error = refusal(raw)
    assert error.field == name and "is required" in error.reason


@pytest.mark.parametrize("name", ["event_id", "lead_id", "source", "type"])
@pytest.mark.parametrize(("value", "kind"), [(5, "integer"), (1.5, "number"), (True, "boolean"), (["e1"], "array"),
                                             ({"id": "e1"}, "object")])
def test_envelope_text_fields_must_be_strings(name, value, kind):
    error = refusal(envelope(**{name: value}))
    assert (error.field, error.reason) == (name, f"must be a string, got {kind}")


@pytest.mark.parametrize("name", ["event_id", "lead_id", "source"])
def test_envelope_text_with_a_lone_surrogate_is_refused(name):
    error = refusal(envelope(**{name: "id-\ud800"}))
    assert (error.field, error.reason) == (name, "must be valid Unicode text (no lone surrogates)")


def test_non_ascii_ids_are_accepted():
    event = parse_event(envelope(event_id="é-😀-\u4e2d", lead_id="L\u00fc"))
    assert (event.event_id, event.lead_id) == ("é-😀-\u4e2d", "L\u00fc")


@pytest.mark.parametrize("value", ["lead.deleted", "LEAD.CREATED", "lead.created ", "", "lead", "x" * 500])
def test_unknown_type_is_refused(value):
    error = refusal(envelope(type=value))
    assert error.field == "type"
    assert error.reason.startswith("unknown event type")
    assert len(error.reason) < 120  # a huge type is not echoed back whole


@pytest.mark.parametrize(("raw", "kind"), [([], "array"), ("{}", "string"), (None, "null"), (42, "integer"),
                                           (4.2, "number"), (True, "boolean"), ([{"event_id": "e1"}], "array")])
def test_an_event_that_is_not_a_json_object_is_refused(raw, kind):
    error = refusal(raw)
    assert (error.field, error.reason) == ("", f"an event must be a JSON object, got {kind}")
    assert str(error) == error.reason


def test_unknown_top_level_fields_are_ignored():
    assert parse_event(envelope(tenant="acme", version=2)) == parse_event(envelope())


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-02T08:00:00Z", datetime(2026, 11, 2, 8, 0)),
        ("2026-11-02T09:30:00+01:30", datetime(2026, 11, 2, 8, 0)),
        ("2026-11-02T03:00:00-05:00", datetime(2026, 11, 2, 8, 0)),
        ("2026-11-02t08:00:00z", datetime(2026, 11, 2, 8, 0)),
        ("2026-11-02 08:00:00Z", datetime(2026, 11, 2, 8, 0)),
        ("2026-11-02T08:00:00.123456789Z", datetime(2026, 11, 2, 8, 0, 0, 123456)),
        ("2026-11-02T08:00:00.5+00:00", datetime(2026, 11, 2, 8, 0, 0, 500000)),
        ("2026-11-01T23:30:00-08:30", datetime(2026, 11, 2, 8, 0)),
        ("2026-02-28T23:00:00-01:00", datetime(2026, 3, 1, 0, 0)),
    ],
)
def test_occurred_at_is_normalised_to_utc(text, utc):
    occurred_at = parse_event(envelope(occurred_at=text)).occurred_at
    assert occurred_at == utc.replace(tzinfo=timezone.utc)
    assert occurred_at.utcoffset() == timedelta(0) and occurred_at.tzinfo is timezone.utc


@pytest.mark.parametrize("text", BAD_OCCURRED_AT)
def test_bad_occurred_at_is_refused(text):
    assert refusal(envelope(occurred_at=text)).field == "occurred_at"


@pytest.mark.parametrize("value", [1790000000, 1.79e9, True, ["2026-11-02T08:00:00Z"], {"t": 1}])
def test_occurred_at_must_be_a_string(value):
    error = refusal(envelope(occurred_at=value))
    assert error.field == "occurred_at" and error.reason.startswith("must be an RFC 3339 string")


def test_events_up_to_five_minutes_ahead_are_accepted_and_later_ones_refused():
    at = lambda dt: envelope(occurred_at=dt.isoformat())  # noqa: E731
    assert parse_event(at(NOW + MAX_FUTURE_SKEW), now=NOW).occurred_at == NOW + MAX_FUTURE_SKEW
    assert parse_event(at(NOW - timedelta(days=400)), now=NOW)
    error = refusal(at(NOW + MAX_FUTURE_SKEW + timedelta(microseconds=1)), now=NOW)
    assert (error.field, error.reason) == ("occurred_at", "is more than 5 minutes in the future")


def test_future_is_judged_in_utc_whatever_the_offsets():
    ahead = envelope(occurred_at="2026-11-02T10:06:00+02:00")  # 08:06 UTC
    berlin_now = NOW.astimezone(timezone(timedelta(hours=1)))
    assert refusal(ahead, now=berlin_now).field == "occurred_at"
    assert parse_event(envelope(occurred_at="2026-11-02T10:04:00+02:00"), now=berlin_now)


def test_without_now_future_events_are_accepted():
    assert parse_event(envelope(occurred_at="2099-01-01T00:00:00Z")).occurred_at.year == 2099


def test_naive_now_is_a_programming_error():
    with pytest.raises(ValueError, match="aware") as caught:
        parse_event(envelope(), now=datetime(2026, 11, 2, 8, 0))
    assert not isinstance(caught.value, InvalidEvent)


def test_the_first_broken_rule_is_reported_in_envelope_order():
    raw = {"event_id": "", "lead_id": "", "type": "nope", "occurred_at": "x", "source": "", "payload": []}
    assert refusal(raw).field == "event_id"
    raw["event_id"] = "e1"
    assert refusal(raw).field == "lead_id"
    raw["lead_id"] = "L1"
    assert refusal(raw).field == "type"
    raw["type"] = "lead.sales_qualified"
    assert refusal(raw).field == "occurred_at"


# --- round trips of any valid event -----------------------------------------------------------

ENVELOPE_CODEC = AvroCodec("event_envelope")


@settings(max_examples=400)
@given(raw_events())
def test_any_valid_event_parses_and_keeps_its_payload(raw):
    event = parse_event(raw)
    assert event.payload == raw["payload"]
    assert (event.event_id, event.lead_id, event.type, event.source) == (
        raw["event_id"], raw["lead_id"], raw["type"], raw["source"])
    assert event.occurred_at == datetime.fromisoformat(raw["occurred_at"].replace("Z", "+00:00"))


@settings(max_examples=400)
@given(raw_events())
def test_any_valid_event_round_trips_through_to_json(raw):
    event = parse_event(raw)
    again = parse_event(event.to_json())
    assert again == event
    assert list(again.payload) == list(event.payload)


@settings(max_examples=400)
@given(raw_events())
def test_any_valid_event_round_trips_through_avro(raw):
    event = parse_event(raw)
    decoded = event_from_avro(ENVELOPE_CODEC.decode(ENVELOPE_CODEC.encode(event_to_avro(event))))
    assert decoded == event
    assert list(decoded.payload) == list(event.payload)
    assert decoded.occurred_at.tzinfo == timezone.utc
