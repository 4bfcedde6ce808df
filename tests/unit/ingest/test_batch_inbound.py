"""How a batch of leadflow.inbound records is routed (pure part of the consumer): valid events to
leadflow.events exactly as HTTP writes them, anything else to leadflow.dlq byte for byte with the
reason and origin headers. The Kafka side (transactions, offsets) is in tests/integration/ingest/."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from aiokafka.structs import ConsumerRecord

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.envelope import parse_event
from services.ingest.inbound import default_group_id, route_records, transactional_id
from services.ingest.records import decode_record_value
from services.ingest.request_body import MAX_EVENT_BYTES
from services.common.config import Topics, load_settings

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
CODEC = AvroCodec("event_envelope")


def record(value: bytes | None, offset: int = 0, key: bytes | None = b"k", headers=()) -> ConsumerRecord:
    return ConsumerRecord("leadflow.inbound", 4, offset, 0, 0, key, value, None,
                          len(key or b""), len(value or b""), list(headers))


def good(i: int, source: str = "hubspot") -> dict:
    return {"event_id": f"e{i}", "lead_id": f"L{i}", "type": "lead.assigned", "occurred_at": "2026-11-02T10:00:00Z",
            "source": source, "payload": {"owner": "ana", "team": "emea", "crm_id": [1, {"x": None}]}}


def route(records):
    return route_records(records, CODEC, "leadflow.events", "leadflow.dlq", NOW)


def test_valid_records_become_event_records_keyed_by_lead_id():
    out = route([record(json.dumps(good(1)).encode(), key=b"whatever"), record(json.dumps(good(2)).encode(), 1, key=None)])
    assert out.accepted == ["hubspot", "hubspot"] and out.refused == []
    first, second = out.records
    assert (first.topic, first.key, second.key) == ("leadflow.events", b"L1", b"L2")
    assert dict(first.headers) == {"source": b"hubspot", "ingest-via": b"kafka"}
    assert event_from_avro(CODEC.decode(first.value)) == parse_event(good(1))


@pytest.mark.parametrize("value, field, words", [
    (b"{not json", "json", "not valid JSON"),
    (b'{"a": NaN}', "json", "NaN is not JSON"),
    (b"\xff\xfe", "json", "not UTF-8"),
    (b"", "json", "not valid JSON"),
    (b"[" * 50_000, "json", "nested too deeply"),
    (json.dumps([good(1)]).encode(), "json", "must be a JSON object, got array"),
    (b"42", "json", "got integer"),
    (json.dumps({**good(1), "type": "lead.vanished"}).encode(), "type", "unknown event type"),
    (json.dumps({**good(1), "payload": {"owner": "ana"}}).encode(), "payload.team", "is required"),
    (json.dumps({**good(1), "occurred_at": "2026-11-02T12:06:00Z"}).encode(), "occurred_at", "future"),
    (json.dumps({**good(1), "event_id": "x" * 129}).encode(), "event_id", "1 to 128"),
])
def test_bad_records_go_to_the_dlq_byte_for_byte_with_reason_and_origin(value, field, words):
    src = record(value, offset=17, key=b"\x00raw key", headers=[("trace", b"t-1")])
    out = route([src])
    assert out.accepted == []
    [dlq] = out.records
    assert dlq.topic == "leadflow.dlq"
    assert dlq.key == b"\x00raw key" and dlq.value == value
    headers = dict(dlq.headers)
    assert headers["trace"] == b"t-1"
    assert headers["leadflow-error-field"] == field.encode()
    assert words in headers["leadflow-error-reason"].decode()
    assert headers["leadflow-origin-topic"] == b"leadflow.inbound"
    assert headers["leadflow-origin-partition"] == b"4"
    assert headers["leadflow-origin-offset"] == b"17"
    assert out.refused[0][1] == field


def test_a_tombstone_and_an_oversized_record_go_to_the_dlq():
    big = json.dumps({**good(1), "payload": {"owner": "a", "team": "b", "pad": "z" * MAX_EVENT_BYTES}}).encode()
    out = route([record(None, 0), record(big, 1)])
    reasons = [dict(r.headers)["leadflow-error-reason"].decode() for r in out.records]
    assert "tombstone" in reasons[0] and f"larger than {MAX_EVENT_BYTES} bytes" in reasons[1]
    assert out.records[0].value is None and out.records[1].value == big


def test_a_record_resent_from_the_dlq_carries_only_the_new_reason():
    first = route([record(b"{bad", 3)]).records[0]
    again = route([record(first.value, 9, headers=first.headers)]).records[0]
    names = [k for k, _ in again.headers]
    assert names.count("leadflow-error-reason") == 1
    assert dict(again.headers)["leadflow-origin-offset"] == b"9"


def test_a_batch_keeps_the_record_order_across_both_topics():
    values = [json.dumps(good(1)).encode(), b"nope", json.dumps(good(2, "website")).encode()]
    out = route([record(v, i) for i, v in enumerate(values)])
    assert [r.topic for r in out.records] == ["leadflow.events", "leadflow.dlq", "leadflow.events"]
    assert out.accepted == ["hubspot", "website"]
    assert out.refused == [(None, "json")]


def test_refused_source_is_read_when_the_value_is_an_object():
    out = route([record(json.dumps({**good(1), "payload": {}}).encode())])
    assert out.refused == [("hubspot", "payload.owner")]


def test_decode_record_value_takes_one_strict_json_value():
    assert decode_record_value(b' {"a": 1} ') == {"a": 1}
    with pytest.raises(ValueError, match="Infinity is not JSON"):
        decode_record_value(b'{"a": Infinity}')


def test_group_and_transactional_ids():
    assert default_group_id(load_settings({})) == "leadflow-ingest"
    assert default_group_id(load_settings({}).with_changes(topics=Topics("t-abc."))) == "leadflow-ingest-t-abc"
    assert transactional_id("leadflow.inbound", 3) == "leadflow-ingest-leadflow.inbound-3"
