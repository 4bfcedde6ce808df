"""HTTP -> leadflow.events on the real Kafka: what a 202 promises is on the topic, Avro single-object
encoded, keyed by lead, in order, decoding to the same envelope."""
from __future__ import annotations

import json
from collections import defaultdict

import pytest

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.config import Secret
from services.common.envelope import EVENT_TYPES, parse_event
from services.ingest.auth import hash_key, signature_headers

from ingest_it_helpers import ingest_client, read_topic, service_of

pytestmark = pytest.mark.stack

CODEC = AvroCodec("event_envelope")
PAYLOADS = {
    "lead.created": {"channel": "website", "segment": "enterprise", "email": "x@example.com", "utm": {"a": [1, None]}},
    "lead.activity": {"kind": "webinar", "helpful": False},
    "lead.scored": {"score": 91.0, "fit": "good"},
    "lead.information_qualified": {},
    "lead.marketing_qualified": {"fit": "good"},
    "lead.assigned": {"owner": "ana", "team": "emea"},
    "lead.accepted": {"owner": "ana"},
    "lead.rejected": {"reason": "no_budget"},
    "contact.attempted": {"channel": "phone"},
    "contact.connected": {"channel": "email", "owner": "ana"},
    "meeting.booked": {"scheduled_for": "2026-11-05T14:00:00+01:00"},
    "lead.sales_qualified": {},
    "opportunity.created": {"opportunity_id": "opp-7", "amount": 1e6},
    "deal.won": {"revenue": 0, "currency": "EUR"},
    "deal.lost": {"reason": "competitor"},
    "lead.recycled": {"reason": "no_response"},
    "lead.disqualified": {"reason": "student", "note": "ünïcödé ✓"},
}


def every_type(lead_ids: list[str]) -> list[dict]:
    events = []
    for i, etype in enumerate(EVENT_TYPES):
        for lead in lead_ids:
            events.append({
                "event_id": f"{lead}-{i:02d}", "lead_id": lead, "type": etype,
                "occurred_at": f"2026-11-02T09:{i:02d}:00.123456+01:00", "source": "website",
                "payload": PAYLOADS[etype], "unknown_top_level": True,
            })
    return events


async def test_http_events_reach_the_topic_and_decode_to_the_same_envelope(settings):
    events = every_type(["L-a", "L-b", "L-ü"])
    async with ingest_client(settings) as client:
        resp = await client.post("/v1/events", json=events[:30])
        assert resp.status == 202, await resp.text()
        assert await resp.json() == {"accepted": 30, "refused": 0, "errors": []}
        ndjson = "\n".join(json.dumps(e) for e in events[30:]) + "\n"
        resp = await client.post("/v1/events", data=ndjson, headers={"Content-Type": "application/x-ndjson"})
        assert resp.status == 202
        assert (await resp.json())["accepted"] == len(events) - 30

    records = await read_topic(settings, settings.topics.events, len(events), settle=1.0)
    assert len(records) == len(events)
    expected = {e["event_id"]: parse_event(e) for e in events}
    by_lead = defaultdict(list)
    partitions = defaultdict(set)
    for record in records:
        decoded = event_from_avro(CODEC.decode(record.value))
        assert decoded == expected[decoded.event_id]
        assert decoded.to_json() == expected[decoded.event_id].to_json()
        assert record.key == decoded.lead_id.encode("utf-8")
        assert dict(record.headers) == {"source": b"website", "ingest-via": b"http"}
        by_lead[decoded.lead_id].append(decoded.event_id)
        partitions[decoded.lead_id].add(record.partition)
    for lead, ids in by_lead.items():
        assert ids == [e["event_id"] for e in events if e["lead_id"] == lead], "a lead's events keep their order"
        assert len(partitions[lead]) == 1


async def test_only_valid_events_are_written_and_counted(settings):
    events = every_type(["L-m"])[:3]
    bad = dict(events[1], event_id="bad-1", payload={"kind": ""})
    async with ingest_client(settings) as client:
        resp = await client.post("/v1/events", json=[events[0], bad, events[2]])
        body = await resp.json()
        assert resp.status == 202
        assert body["accepted"] == 2 and body["errors"] == [{"index": 1, "field": "payload.kind", "reason": "must not be empty"}]
        registry = service_of(client).registry
        assert registry.get_sample_value("leadflow_ingest_events_accepted_total", {"source": "website", "via": "http"}) == 2
        assert registry.get_sample_value("leadflow_ingest_events_refused_total",
                                         {"source": "website", "via": "http", "field": "payload.kind"}) == 1
        resp = await client.get("/readyz")
        assert resp.status == 200 and (await resp.json())["checks"]["kafka"] == "ok"
    records = await read_topic(settings, settings.topics.events, 2, settle=1.0)
    assert sorted(event_from_avro(CODEC.decode(r.value)).event_id for r in records) == [events[0]["event_id"], events[2]["event_id"]]


async def test_authenticated_and_signed_requests_on_the_real_topic(settings):
    key, secret = "hubspot-real-key", "signing-secret"
    keyed = settings.with_changes(ingest_api_keys=Secret(f"hubspot:{hash_key(key)}"), ingest_hmac_secret=Secret(secret))
    event = dict(every_type(["L-k"])[0], source="hubspot")
    raw = json.dumps(event).encode()
    async with ingest_client(keyed) as client:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        import time

        resp = await client.post("/v1/events", data=raw, headers={**headers, **signature_headers(secret, raw, time.time())})
        assert resp.status == 202
        resp = await client.post("/v1/events", data=raw, headers=headers)   # unsigned
        assert resp.status == 401
    [record] = await read_topic(settings, settings.topics.events, 1, settle=1.0)
    assert dict(record.headers)["source"] == b"hubspot"
