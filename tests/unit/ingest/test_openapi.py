"""The OpenAPI document: committed copy equals the generated one, it is valid OpenAPI 3.1, and its
event JSON Schema agrees with parse_event (same events valid, same events invalid)."""
from __future__ import annotations

import calendar
import json
import re
from datetime import datetime, timezone
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.common.envelope import EVENT_TYPES, PAYLOAD_RULES, RFC3339_PATTERN, InvalidEvent, parse_event
from services.ingest import request_body
from services.ingest.openapi import OPENAPI_JSON_PATH, build_openapi, event_schema_name, render_openapi

from .samples import BAD_OCCURRED_AT, CALENDAR_ONLY_BAD_OCCURRED_AT, FULL_PAYLOADS, INVALID_PAYLOADS, envelope
from .strategies import raw_events, valid_values, wrong_kind_values

DOCUMENT = build_openapi()


def validator_for(schema_name: str) -> jsonschema_rs.Validator:
    """A JSON Schema 2020-12 validator for one component, refs resolved inside the document."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": DOCUMENT["components"]}
    return jsonschema_rs.Draft202012Validator(root)


EVENT = validator_for("Event")
REQUEST_BODY = jsonschema_rs.Draft202012Validator({
    **DOCUMENT["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    "components": DOCUMENT["components"],
})


def parse_event_accepts(raw: Any) -> bool:
    try:
        parse_event(raw)
    except InvalidEvent:
        return False
    return True


def test_committed_document_is_the_generated_one():
    assert OPENAPI_JSON_PATH.read_text(encoding="utf-8") == render_openapi(), (
        "schemas/openapi.json is stale: run `python -m services.ingest.openapi --write`"
    )


def test_document_is_valid_openapi_3_1_with_all_operations():
    schema = schemathesis.openapi.from_dict(json.loads(render_openapi()))
    schema.validate()
    labels = {op.ok().label for op in schema.get_all_operations()}
    assert labels == {"POST /v1/events", "GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"}


def test_post_events_documents_auth_limits_and_every_status():
    post = DOCUMENT["paths"]["/v1/events"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert DOCUMENT["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "The ingest token given to the upstream system."}
    headers = {p["name"]: p for p in post["parameters"]}
    assert set(headers) == {"X-Leadflow-Timestamp", "X-Leadflow-Signature"}
    assert not any(p["required"] for p in headers.values())
    signature = jsonschema_rs.Draft202012Validator(headers["X-Leadflow-Signature"]["schema"])
    assert signature.is_valid("sha256=" + "ab" * 32) and not signature.is_valid("sha1=" + "ab" * 20)
    assert 'timestamp + "." + raw body' in headers["X-Leadflow-Signature"]["description"]
    assert set(post["responses"]) == {"202", "400", "401", "413", "415", "422", "503"}
    assert set(post["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    for number in ("1000 events", "1048576 bytes", "65536 bytes"):
        assert number in post["description"]
    array = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    assert array["maxItems"] == request_body.MAX_EVENTS_PER_REQUEST == 1000


def test_only_the_health_checks_need_no_auth():
    for path in ("/healthz", "/readyz"):
        assert DOCUMENT["paths"][path]["get"]["security"] == []
    for path in ("/metrics", "/openapi.json"):
        assert DOCUMENT["paths"][path]["get"]["security"] == [{"bearerAuth": []}]
        assert "401" in DOCUMENT["paths"][path]["get"]["responses"]


def test_event_is_one_of_the_types_discriminated_by_type():
    event = DOCUMENT["components"]["schemas"]["Event"]
    assert event["discriminator"]["propertyName"] == "type"
    assert list(event["discriminator"]["mapping"]) == list(EVENT_TYPES)
    assert [ref["$ref"] for ref in event["oneOf"]] == list(event["discriminator"]["mapping"].values())
    for event_type in EVENT_TYPES:
        schema = DOCUMENT["components"]["schemas"][event_schema_name(event_type)]
        assert schema["properties"]["type"] == {"const": event_type}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_payload_schema_is_generated_from_the_payload_rules(event_type):
    payload = DOCUMENT["components"]["schemas"][event_schema_name(event_type).removesuffix("Event") + "Payload"]
    rules = PAYLOAD_RULES[event_type]
    assert list(payload["properties"]) == list(rules)
    assert payload.get("required", []) == [n for n, r in rules.items() if r.required]
    assert payload["additionalProperties"] is True


# --- agreement with parse_event -----------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_sample_valid_events_validate(event_type):
    raw = envelope(event_type, {**FULL_PAYLOADS[event_type], "x_unknown": {"any": [1, None]}})
    assert parse_event_accepts(raw)
    EVENT.validate(raw)


# NaN and Infinity are not JSON (the body reader refuses them), so they have no JSON Schema verdict.
JSON_INVALID_PAYLOADS = [case for case in INVALID_PAYLOADS if all(
    not isinstance(v, float) or v - v == 0 for v in (case[1].values() if isinstance(case[1], dict) else []))]


@pytest.mark.parametrize(("etype", "payload", "field", "reason"), JSON_INVALID_PAYLOADS,
                         ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(JSON_INVALID_PAYLOADS)])
def test_sample_invalid_payloads_do_not_validate(etype, payload, field, reason):
    raw = envelope(etype, payload)
    assert not parse_event_accepts(raw)
    assert not EVENT.is_valid(raw)


INVALID_ENVELOPES: list[Any] = [
    [], "event", None, 5,
    envelope(event_id=""), envelope(event_id="e" * 129), envelope(event_id=7),
    envelope(lead_id=""), envelope(lead_id="L" * 129), envelope(lead_id=None),
    envelope(source=""), envelope(source="s" * 65), envelope(source=["s"]),
    envelope(type="lead.deleted"), envelope(type=""), envelope(type=None), envelope(type=1),
    envelope(occurred_at=1790000000), envelope(payload=[]), {**envelope(), "payload": None},
    *[{k: v for k, v in envelope().items() if k != name}
      for name in ("event_id", "lead_id", "type", "occurred_at", "source", "payload")],
    *[envelope(occurred_at=t) for t in BAD_OCCURRED_AT if t not in CALENDAR_ONLY_BAD_OCCURRED_AT],
]


@pytest.mark.parametrize("raw", INVALID_ENVELOPES)
def test_invalid_envelopes_are_invalid_for_both(raw):
    assert not parse_event_accepts(raw)
    assert not EVENT.is_valid(raw)


@pytest.mark.parametrize("text", sorted(CALENDAR_ONLY_BAD_OCCURRED_AT))
def test_calendar_errors_are_the_documented_gap(text):
    # The pattern checks field ranges, not the calendar: only parse_event refuses these.
    assert re.match(RFC3339_PATTERN, text)
    assert not parse_event_accepts(envelope(occurred_at=text))
    assert "pattern" in DOCUMENT["components"]["schemas"]["OccurredAt"]


def test_integral_float_scores_are_integers_for_both():
    raw = envelope("lead.scored", {"score": 87.0})
    assert parse_event_accepts(raw) and EVENT.is_valid(raw)


def test_blank_is_the_same_whitespace_for_both():
    # U+001C is str.isspace() in Python but not Unicode White_Space: text for both.
    for text, blank in ((" \t\u3000\u2028", True), ("\u001c", False), ("\u200b", False)):
        raw = envelope("lead.rejected", {"reason": text})
        assert parse_event_accepts(raw) is not blank
        assert EVENT.is_valid(raw) is not blank


@settings(max_examples=300)
@given(raw_events())
def test_any_valid_event_validates(raw):
    assert parse_event_accepts(raw)
    EVENT.validate(raw)


@settings(max_examples=300)
@given(st.data())
def test_any_wrong_kind_in_a_known_field_is_invalid_for_both(data):
    etype = data.draw(st.sampled_from([t for t in EVENT_TYPES if PAYLOAD_RULES[t]]))
    name, rule = data.draw(st.sampled_from(sorted(PAYLOAD_RULES[etype].items())))
    payload = {n: data.draw(valid_values(r)) for n, r in PAYLOAD_RULES[etype].items() if r.required}
    payload[name] = data.draw(wrong_kind_values(rule))
    raw = envelope(etype, payload)
    assert not parse_event_accepts(raw)
    assert not EVENT.is_valid(raw)


_FIELD_VALUES = {"month": range(0, 14), "day": range(0, 33), "hour": range(0, 26), "minute": range(0, 62),
                 "second": range(0, 62), "off_hour": range(0, 26), "off_minute": range(0, 62)}


@settings(max_examples=500)
@given(st.fixed_dictionaries({k: st.sampled_from(list(v)) for k, v in _FIELD_VALUES.items()}),
       st.sampled_from(["Z", "+", "-"]), st.sampled_from(["", ".5", ".123456789"]))
def test_timestamp_pattern_and_parse_event_agree_on_field_ranges(parts, sign, fraction):
    month, day = parts["month"], parts["day"]
    # The documented gap: a day that exists in no month is caught by both, but the 31st of a
    # 30-day month (or February 29-31) only by parse_event.
    assume(not (1 <= month <= 12 and 1 <= day <= 31 and day > calendar.monthrange(2026, month)[1]))
    offset = "Z" if sign == "Z" else f"{sign}{parts['off_hour']:02d}:{parts['off_minute']:02d}"
    raw = envelope(occurred_at=f"2026-{month:02d}-{day:02d}T{parts['hour']:02d}:{parts['minute']:02d}:"
                               f"{parts['second']:02d}{fraction}{offset}")
    assert parse_event_accepts(raw) is EVENT.is_valid(raw)


def test_request_body_schema_takes_one_event_or_up_to_1000():
    one = envelope()
    assert REQUEST_BODY.is_valid(one)
    assert REQUEST_BODY.is_valid([one] * 1000)
    assert not REQUEST_BODY.is_valid([one] * 1001)
    assert not REQUEST_BODY.is_valid([])


def test_response_examples_match_what_the_body_validator_returns():
    body = json.dumps([envelope(), envelope(payload={"score": "x"})]).encode()
    result = request_body.validate_body(body, "application/json", now=datetime(2026, 11, 2, 9, tzinfo=timezone.utc))
    assert result.status == 202
    validator_for("IngestResult").validate(result.to_json())
    assert result.to_json()["errors"] == [{"index": 1, "field": "payload.score", "reason": "must be an integer, got string"}]
