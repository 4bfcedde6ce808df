"""Contract §1 (the event envelope) and §2 (types and required payload fields), row by row,
through the public parse_event / Event.to_json / Avro codec."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.common.avro_codec import AvroCodec, event_from_avro, event_to_avro
from services.common.envelope import InvalidEvent, parse_event

EXAMPLE = {
    "event_id": "e7",
    "lead_id": "L1",
    "type": "lead.marketing_qualified",
    "occurred_at": "2026-11-02T09:00:00+01:00",
    "source": "hubspot",
    "payload": {"fit": "good", "hubspot_score": 71, "form": {"id": "f-9", "fields": ["email"]}},
}

# §2: the type and its required (bold) fields, with values.
REQUIRED_BY_TYPE = {
    "lead.created": {},
    "lead.activity": {"kind": "download"},
    "lead.scored": {"score": 40},
    "lead.information_qualified": {},
    "lead.marketing_qualified": {},
    "lead.assigned": {"owner": "ana", "team": "emea"},
    "lead.accepted": {},
    "lead.rejected": {"reason": "no_budget"},
    "contact.attempted": {"channel": "phone"},
    "contact.connected": {"channel": "phone"},
    "meeting.booked": {},
    "lead.sales_qualified": {},
    "opportunity.created": {"opportunity_id": "o1"},
    "deal.won": {"revenue": 0},
    "deal.lost": {"reason": "price"},
    "lead.recycled": {"reason": "no_response"},
    "lead.disqualified": {"reason": "spam"},
}


def with_fields(**fields):
    return {**EXAMPLE, **fields}


def refused_field(raw, **kw) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, **kw)
    return caught.value.field


def test_an_envelope_with_every_field_is_accepted():
    event = parse_event(EXAMPLE)
    assert (event.event_id, event.lead_id, event.type, event.source) == ("e7", "L1", "lead.marketing_qualified", "hubspot")


def test_occurred_at_is_rfc3339_with_offset_and_means_the_same_instant_in_utc():
    assert parse_event(EXAMPLE).occurred_at == datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
    assert parse_event(EXAMPLE).to_json()["occurred_at"] == "2026-11-02T08:00:00Z"
    assert refused_field(with_fields(occurred_at="2026-11-02T09:00:00")) == "occurred_at"


def test_payload_unknown_extra_fields_are_kept_not_rejected():
    event = parse_event(EXAMPLE)
    assert event.to_json()["payload"] == EXAMPLE["payload"]
    codec = AvroCodec("event_envelope")  # "Avro inside the pipeline": kept there too
    assert event_from_avro(codec.decode(codec.encode(event_to_avro(event)))).payload == EXAMPLE["payload"]


@pytest.mark.parametrize(("field", "longest"), [("event_id", 128), ("lead_id", 128), ("source", 64)])
def test_string_lengths(field, longest):
    assert parse_event(with_fields(**{field: "a" * longest}))
    assert parse_event(with_fields(**{field: "a"}))
    assert refused_field(with_fields(**{field: "a" * (longest + 1)})) == field
    assert refused_field(with_fields(**{field: ""})) == field


@pytest.mark.parametrize("missing", ["event_id", "lead_id", "type", "occurred_at", "source", "payload"])
def test_a_missing_field_makes_the_event_invalid_and_is_named(missing):
    raw = dict(EXAMPLE)
    del raw[missing]
    assert refused_field(raw) == missing


def test_mistyped_fields_are_named():
    assert refused_field(with_fields(lead_id=1)) == "lead_id"
    assert refused_field(with_fields(payload=["fit", "good"])) == "payload"
    assert refused_field(with_fields(type="lead.marketing_qualified", payload={"fit": "great"})) == "payload.fit"


def test_unknown_type_is_invalid():
    assert refused_field(with_fields(type="lead.merged")) == "type"


@pytest.mark.parametrize("etype", sorted(REQUIRED_BY_TYPE))
def test_every_type_is_valid_with_its_required_fields(etype):
    assert parse_event(with_fields(type=etype, payload=REQUIRED_BY_TYPE[etype])).type == etype


@pytest.mark.parametrize("etype", sorted(t for t, required in REQUIRED_BY_TYPE.items() if required))
def test_every_required_payload_field_is_required(etype):
    for name in REQUIRED_BY_TYPE[etype]:
        payload = {k: v for k, v in REQUIRED_BY_TYPE[etype].items() if k != name}
        assert refused_field(with_fields(type=etype, payload=payload)) == f"payload.{name}"


def test_typed_payload_fields():
    assert refused_field(with_fields(type="lead.scored", payload={"score": "high"})) == "payload.score"
    assert refused_field(with_fields(type="lead.activity", payload={"kind": "webinar", "helpful": "yes"})) == "payload.helpful"
    assert refused_field(with_fields(type="deal.won", payload={"revenue": -1})) == "payload.revenue"
    for fit in ("good", "poor", "unknown"):
        assert parse_event(with_fields(type="lead.scored", payload={"score": 1, "fit": fit}))
    assert refused_field(with_fields(type="lead.scored", payload={"score": 1, "fit": "ok"})) == "payload.fit"


def test_open_value_lists_accept_values_beyond_the_examples():
    created = parse_event(with_fields(type="lead.created", payload={"channel": "partner", "segment": "startup"}))
    assert created.payload == {"channel": "partner", "segment": "startup"}
    assert parse_event(with_fields(type="contact.attempted", payload={"channel": "whatsapp"}))
