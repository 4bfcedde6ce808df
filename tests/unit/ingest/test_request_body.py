"""Reading POST /v1/events bodies: the three shapes, the limits, and which failures refuse one
event versus the whole request."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from services.ingest.request_body import (
    MAX_EVENT_BYTES,
    MAX_EVENTS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    BodyRejected,
    Refusal,
    read_events,
    validate_body,
)

from .samples import envelope

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
NDJSON = "application/x-ndjson"


def event(n: int = 1, **payload) -> dict:
    return envelope("lead.activity", {"kind": "page_view", **payload}, event_id=f"e{n}")


def json_body(value) -> bytes:
    return json.dumps(value).encode()


def ndjson_body(*values) -> bytes:
    return b"\n".join(json.dumps(v).encode() for v in values) + b"\n"


def rejected(body: bytes, content_type: str | None = "application/json") -> BodyRejected:
    with pytest.raises(BodyRejected) as caught:
        validate_body(body, content_type, now=NOW)
    return caught.value


def test_one_event_object():
    result = validate_body(json_body(event()), "application/json", now=NOW)
    assert [(i, e.event_id) for i, e in result.events] == [(0, "e1")]
    assert result.status == 202
    assert result.to_json() == {"accepted": 1, "refused": 0, "errors": []}


def test_an_array_of_events_keeps_order_and_indexes():
    result = validate_body(json_body([event(1), event(2), event(3)]), "application/json", now=NOW)
    assert [(i, e.event_id) for i, e in result.events] == [(0, "e1"), (1, "e2"), (2, "e3")]


def test_ndjson_skips_blank_lines_and_crlf():
    body = b"\r\n" + json_body(event(1)) + b"\r\n\n   \n" + json_body(event(2)) + b"\r\n"
    result = validate_body(body, NDJSON, now=NOW)
    assert [(i, e.event_id) for i, e in result.events] == [(0, "e1"), (1, "e2")]


@pytest.mark.parametrize("content_type", [
    None, "application/json", "application/json; charset=utf-8", "Application/JSON",
])
def test_json_content_types(content_type):
    assert validate_body(json_body(event()), content_type, now=NOW).status == 202


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/ndjson", "application/x-ndjson; charset=utf-8"])
def test_ndjson_content_types(content_type):
    assert len(validate_body(ndjson_body(event(1), event(2)), content_type, now=NOW).events) == 2


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_other_content_types_are_415(content_type):
    assert rejected(json_body(event()), content_type).status == 415


def test_some_invalid_events_are_refused_with_index_field_and_reason_and_the_rest_accepted():
    body = json_body([event(1), event(2, helpful="yes"), {"event_id": "e3"}, event(4), 7])
    result = validate_body(body, "application/json", now=NOW)
    assert [i for i, _ in result.events] == [0, 3]
    assert result.refusals == [
        Refusal(1, "payload.helpful", "must be a boolean, got string"),
        Refusal(2, "lead_id", "is required"),
        Refusal(4, "", "an event must be a JSON object, got integer"),
    ]
    assert result.status == 202
    assert result.to_json()["accepted"] == 2 and result.to_json()["refused"] == 3


def test_no_valid_event_is_422():
    result = validate_body(json_body([event(1, helpful=1), {}]), "application/json", now=NOW)
    assert result.status == 422
    assert result.to_json() == {"accepted": 0, "refused": 2, "errors": [
        {"index": 0, "field": "payload.helpful", "reason": "must be a boolean, got integer"},
        {"index": 1, "field": "event_id", "reason": "is required"},
    ]}


def test_events_too_far_ahead_of_now_are_refused():
    ahead = event(2) | {"occurred_at": (NOW + timedelta(minutes=6)).isoformat()}
    result = validate_body(json_body([event(1), ahead]), "application/json", now=NOW)
    assert result.refusals == [Refusal(1, "occurred_at", "is more than 5 minutes in the future")]


def test_broken_json_line_in_ndjson_refuses_that_line_only():
    body = json_body(event(1)) + b"\n{not json\n" + b"\xff\xfe\n" + b'{"a": NaN}\n' + json_body(event(2))
    result = validate_body(body, NDJSON, now=NOW)
    assert [i for i, _ in result.events] == [0, 4]
    assert [r.index for r in result.refusals] == [1, 2, 3]
    assert result.refusals[0].reason.startswith("the line is not valid JSON")
    assert result.refusals[1].reason.startswith("the line is not UTF-8")
    assert result.refusals[2].reason == "the line is not valid JSON: NaN is not JSON"


@pytest.mark.parametrize("body", [
    b"{not json", b'[{"a": 1},]', b"[1, 2", b'{"a": 1} {"b": 2}', b'[{"a": 1}] x', b'{"a": Infinity}',
    b'[-Infinity]', b"\xff\xfe{}", b"\xef\xbb\xbf{}",
])
def test_a_json_body_that_cannot_be_read_is_400(body):
    error = rejected(body)
    assert error.status == 400
    assert "JSON" in error.reason or "UTF-8" in error.reason


@pytest.mark.parametrize(("body", "content_type"), [
    (b"", "application/json"), (b"  \n\t ", "application/json"), (b"[]", "application/json"),
    (b" [ ] ", "application/json"), (b"", NDJSON), (b"\n\n  \r\n", NDJSON),
])
def test_a_body_without_events_is_400(body, content_type):
    error = rejected(body, content_type)
    assert (error.status, error.reason) == (400, "the body has no events")


def test_exactly_the_event_limit_is_read_and_one_more_is_413():
    small = {"event_id": "e", "lead_id": "L", "type": "lead.sales_qualified",
             "occurred_at": "2026-11-02T08:00:00Z", "source": "w", "payload": {}}
    assert len(read_events(json_body([small] * MAX_EVENTS_PER_REQUEST), None)) == MAX_EVENTS_PER_REQUEST
    assert len(read_events(ndjson_body(*[small] * MAX_EVENTS_PER_REQUEST), NDJSON)) == MAX_EVENTS_PER_REQUEST
    for body, content_type in ((json_body([small] * (MAX_EVENTS_PER_REQUEST + 1)), None),
                               (ndjson_body(*[small] * (MAX_EVENTS_PER_REQUEST + 1)), NDJSON)):
        error = rejected(body, content_type)
        assert (error.status, error.reason) == (413, "more than 1000 events in one request")


def test_a_body_over_one_mebibyte_is_413():
    padding = "x" * 1000
    events = [event(n, note=padding) for n in range(1100)]
    body = json_body(events)
    assert len(body) > MAX_REQUEST_BYTES
    error = rejected(body)
    assert (error.status, error.reason) == (413, "the body is larger than 1048576 bytes")
    assert rejected(b" " * (MAX_REQUEST_BYTES + 1)).status == 413


def sized_event(n: int, size: int) -> dict:
    """An event whose compact JSON is exactly `size` bytes."""
    base = event(n, note="")
    pad = size - len(json.dumps(base, separators=(",", ":")).encode())
    padded = event(n, note="x" * pad)
    assert len(json.dumps(padded, separators=(",", ":")).encode()) == size
    return padded


def test_an_event_over_64_kib_is_refused_alone_in_an_array():
    body = b"[" + b",".join(json.dumps(e, separators=(",", ":")).encode() for e in (
        sized_event(1, MAX_EVENT_BYTES), sized_event(2, MAX_EVENT_BYTES + 1), event(3))) + b"]"
    result = validate_body(body, "application/json", now=NOW)
    assert [i for i, _ in result.events] == [0, 2]
    assert result.refusals == [Refusal(1, "", "the event is larger than 65536 bytes (65537)")]


def test_an_event_over_64_kib_counts_utf8_bytes_not_characters():
    base_len = len(json.dumps(event(1, note=""), separators=(",", ":"), ensure_ascii=False).encode())
    chars = (MAX_EVENT_BYTES - base_len) // 2 + 1  # two bytes each: just over the limit in bytes
    body = json.dumps([event(1, note="é" * chars)], separators=(",", ":"), ensure_ascii=False).encode()
    result = validate_body(body, "application/json", now=NOW)
    assert result.status == 422 and result.refusals[0].reason.startswith("the event is larger than 65536 bytes")


def test_an_event_over_64_kib_is_refused_alone_in_ndjson_and_as_the_only_event():
    big = sized_event(2, MAX_EVENT_BYTES + 1)
    result = validate_body(ndjson_body(event(1), big), NDJSON, now=NOW)
    assert [r.index for r in result.refusals] == [1] and len(result.events) == 1
    alone = rejected(json.dumps(big, separators=(",", ":")).encode())
    assert alone.status == 413 and "the event is larger than 65536 bytes" in alone.reason


def test_whitespace_around_json_is_fine():
    body = b" \n[ \n" + json_body(event(1)) + b" ,\n\t" + json_body(event(2)) + b"\n]\n "
    assert len(validate_body(body, "application/json", now=NOW).events) == 2


def test_json_nested_deeper_than_python_can_read_is_400_for_a_body_and_refused_for_a_line():
    deep = b"[" * 50_000 + b"]" * 50_000
    error = rejected(b'{"payload": ' + deep + b"}")
    assert error.status == 400 and "nested too deeply" in error.reason
    result = validate_body(json_body(event(1)) + b"\n" + deep[:60_000] + b"\n", NDJSON, now=NOW)
    assert len(result.events) == 1
    assert result.refusals == [Refusal(1, "", "the line is nested too deeply")]
