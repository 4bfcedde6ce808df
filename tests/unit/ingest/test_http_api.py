"""POST /v1/events and the other routes, in process, with Kafka replaced by a recording publisher:
body forms (object, array, NDJSON), limits, response shapes, auth, 503, metrics, /openapi.json.
The same paths against the real Kafka are in tests/integration/ingest/."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.config import Secret, load_settings
from services.common.envelope import parse_event
from services.ingest.app import SERVICE_KEY, IngestOptions, create_app
from services.ingest.auth import hash_key, sign
from services.ingest.openapi import build_openapi
from services.ingest.publisher import KafkaUnavailable
from services.ingest.request_body import MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES

NDJSON = {"Content-Type": "application/x-ndjson"}
WEBSITE_KEY = "website-test-key-1"
HUBSPOT_KEY = "hubspot-test-key-2"
CODEC = AvroCodec("event_envelope")


def event(i: int = 1, *, source: str = "website", lead: str | None = None, **changes) -> dict:
    base = {
        "event_id": f"e-{i}", "lead_id": lead or f"L-{i}", "type": "lead.scored",
        "occurred_at": "2026-11-02T09:00:00+01:00", "source": source,
        "payload": {"score": 80 + i % 10, "fit": "good", "extra": {"nested": [1, 2]}},
    }
    base.update(changes)
    return base


class RecordingPublisher:
    """Stands in for HttpPublisher: keeps what would have been sent, or fails like Kafka down."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.down = False
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    async def publish(self, records) -> None:
        if self.down:
            raise KafkaUnavailable("Kafka producer not connected")
        self.batches.append(list(records))

    async def kafka_ready(self, topic: str, timeout: float = 3.0):
        return (False, "producer not connected") if self.down else (True, f"1 broker(s), {topic}: 3 partition(s)")

    async def close(self) -> None:
        self.closed = True

    @property
    def records(self) -> list:
        return [r for batch in self.batches for r in batch]


def make_settings(keys: dict[str, str] | None = None, hmac_secret: str = ""):
    spec = ",".join(f"{source}:{hash_key(key)}" for key, source in (keys or {}).items())
    return load_settings({}).with_changes(ingest_api_keys=Secret(spec), ingest_hmac_secret=Secret(hmac_secret))


class Api:
    def __init__(self, client: TestClient, publisher: RecordingPublisher, registry: CollectorRegistry) -> None:
        self.client = client
        self.publisher = publisher
        self.registry = registry

    async def post(self, body, headers=None, key: str | None = None):
        headers = dict(headers or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        resp = await self.client.post("/v1/events", data=body, headers=headers)
        return resp.status, await resp.json(), resp.headers

    def metric(self, name: str, **labels) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
async def api_factory():
    clients: list[TestClient] = []

    async def make(keys: dict[str, str] | None = None, hmac_secret: str = "") -> Api:
        registry = CollectorRegistry()
        app = create_app(make_settings(keys, hmac_secret), IngestOptions(consume_inbound=False), registry)
        publisher = RecordingPublisher()
        app[SERVICE_KEY].publisher = publisher
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Api(client, publisher, registry)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def api(api_factory):
    return await api_factory()


@pytest.fixture
async def keyed_api(api_factory):
    return await api_factory({WEBSITE_KEY: "website", HUBSPOT_KEY: "hubspot"})


# --- body forms ---------------------------------------------------------------------------------

async def test_one_event_object_is_accepted_and_published_as_avro(api):
    raw = event(1)
    status, body, _ = await api.post(raw)
    assert status == 202
    assert body == {"accepted": 1, "refused": 0, "errors": []}
    [record] = api.publisher.records
    assert record.topic == "leadflow.events"
    assert record.key == b"L-1"
    assert dict(record.headers) == {"source": b"website", "ingest-via": b"http"}
    assert event_from_avro(CODEC.decode(record.value)) == parse_event(raw)


async def test_an_array_keeps_order_and_publishes_once_per_request(api):
    events = [event(i, lead="L-same") for i in range(5)]
    status, body, _ = await api.post(events)
    assert status == 202 and body["accepted"] == 5
    assert len(api.publisher.batches) == 1
    assert [event_from_avro(CODEC.decode(r.value)).event_id for r in api.publisher.records] == [f"e-{i}" for i in range(5)]


async def test_ndjson_with_blank_lines_and_crlf(api):
    text = "\r\n".join([json.dumps(event(1)), "", json.dumps(event(2)), "   "]) + "\r\n"
    status, body, _ = await api.post(text, NDJSON)
    assert status == 202
    assert body == {"accepted": 2, "refused": 0, "errors": []}


async def test_mixed_valid_and_invalid_events_name_index_field_and_reason(api):
    bad_score = event(2, payload={"score": "high"})
    unknown_type = event(3, type="lead.teleported")
    future = event(4, occurred_at=(datetime.now(timezone.utc) + timedelta(minutes=10)).isoformat())
    status, body, _ = await api.post([event(1), bad_score, unknown_type, future, event(5)])
    assert status == 202
    assert body["accepted"] == 2 and body["refused"] == 3
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "payload.score"), (2, "type"), (3, "occurred_at")]
    assert "must be an integer, got string" in body["errors"][0]["reason"]
    assert "future" in body["errors"][2]["reason"]
    assert [r.key for r in api.publisher.records] == [b"L-1", b"L-5"]


async def test_a_broken_ndjson_line_refuses_that_line_only(api):
    text = json.dumps(event(1)) + "\n{not json\n" + json.dumps(event(3)) + "\n"
    status, body, _ = await api.post(text, NDJSON)
    assert status == 202
    assert body["accepted"] == 2
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "")]
    assert "not valid JSON" in body["errors"][0]["reason"]


async def test_no_valid_event_is_422_with_the_result_shape_and_nothing_published(api):
    status, body, _ = await api.post([event(1, lead_id=""), 42])
    assert status == 422
    assert body["accepted"] == 0 and body["refused"] == 2
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "lead_id"), (1, "")]
    assert api.publisher.batches == []


@pytest.mark.parametrize("raw", [b"{", b"[1, 2", b"", b"   ", b"\xff\xfe{}", b'{"a": NaN}'])
async def test_a_body_that_is_not_json_is_400_with_an_error_body(api, raw):
    status, body, _ = await api.post(raw, {"Content-Type": "application/json"})
    assert status == 400
    assert body["error"] == "bad_request" and body["reason"]
    assert api.publisher.batches == []


async def test_deeply_nested_json_is_400_not_a_server_error(api):
    status, body, _ = await api.post(b"[" * 200_000, {"Content-Type": "application/json"})
    assert status == 400 and "nested too deeply" in body["reason"]


async def test_unknown_content_type_is_415(api):
    status, body, _ = await api.post(json.dumps(event(1)), {"Content-Type": "text/plain"})
    assert status == 415 and body["error"] == "unsupported_media_type"


async def test_no_content_type_is_read_as_json(api):
    resp = await api.client.post("/v1/events", data=json.dumps(event(1)).encode(), headers={"Content-Type": ""})
    assert resp.status == 202


# --- limits -------------------------------------------------------------------------------------

async def test_exactly_1000_events_pass_and_1001_is_413_naming_the_event_limit(api):
    status, body, _ = await api.post([event(i) for i in range(MAX_EVENTS_PER_REQUEST)])
    assert status == 202 and body["accepted"] == MAX_EVENTS_PER_REQUEST
    status, body, _ = await api.post([event(i) for i in range(MAX_EVENTS_PER_REQUEST + 1)])
    assert status == 413 and body["error"] == "payload_too_large"
    assert f"more than {MAX_EVENTS_PER_REQUEST} events" in body["reason"]
    assert len(api.publisher.batches) == 1


async def test_a_body_over_1_mib_is_413_naming_the_byte_limit(api):
    padding = "x" * (MAX_REQUEST_BYTES + 10)
    status, body, _ = await api.post(json.dumps(event(1, payload={"score": 1, "pad": padding})))
    assert status == 413 and f"larger than {MAX_REQUEST_BYTES} bytes" in body["reason"]


async def test_a_chunked_body_over_1_mib_is_413_while_reading(api):
    async def chunks():
        for _ in range(20):
            yield b" " * (64 * 1024)

    resp = await api.client.post("/v1/events", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert f"larger than {MAX_REQUEST_BYTES} bytes" in (await resp.json())["reason"]


async def test_an_event_over_64_kib_is_refused_alone(api):
    big = event(2, payload={"score": 1, "pad": "y" * MAX_EVENT_BYTES})
    status, body, _ = await api.post([event(1), big])
    assert status == 202 and body["accepted"] == 1
    assert body["errors"][0]["index"] == 1 and str(MAX_EVENT_BYTES) in body["errors"][0]["reason"]


# --- auth ---------------------------------------------------------------------------------------

async def test_without_keys_the_api_is_open(api):
    status, _, _ = await api.post(event(1))
    assert status == 202


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {WEBSITE_KEY}"},
    {"Authorization": "Bearer"}, {"Authorization": f"Bearer {WEBSITE_KEY}x"},
])
async def test_missing_or_wrong_key_is_401_with_one_generic_body(keyed_api, headers):
    status, body, resp_headers = await keyed_api.post(event(1), headers)
    assert status == 401
    assert body == {"error": "unauthorized", "reason": "missing or invalid credentials"}
    assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    assert keyed_api.publisher.batches == []


async def test_a_key_may_only_publish_its_own_source(keyed_api):
    status, body, _ = await keyed_api.post([event(1, source="website"), event(2, source="hubspot")], key=WEBSITE_KEY)
    assert status == 202
    assert body["accepted"] == 1
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "source")]
    assert "'website'" in body["errors"][0]["reason"]
    status, body, _ = await keyed_api.post(event(3, source="hubspot"), key=HUBSPOT_KEY)
    assert status == 202 and body["accepted"] == 1


async def test_a_key_for_another_source_only_refuses_events(keyed_api):
    status, body, _ = await keyed_api.post(event(1, source="website"), key=HUBSPOT_KEY)
    assert status == 422 and body["errors"][0]["field"] == "source"


async def test_signed_requests(api_factory):
    secret = "s3cret"
    api = await api_factory({WEBSITE_KEY: "website"}, hmac_secret=secret)
    raw = json.dumps(event(1)).encode()
    now = int(time.time())
    ok = {"Content-Type": "application/json", "X-Leadflow-Timestamp": str(now),
          "X-Leadflow-Signature": sign(secret, now, raw)}
    status, body, _ = await api.post(raw, ok, key=WEBSITE_KEY)
    assert status == 202 and body["accepted"] == 1

    stale = now - 301
    cases = [
        {**ok, "X-Leadflow-Signature": sign("other", now, raw)},                       # wrong secret
        {**ok, "X-Leadflow-Signature": sign(secret, now, raw + b" ")},                 # other body
        {**ok, "X-Leadflow-Timestamp": str(stale), "X-Leadflow-Signature": sign(secret, stale, raw)},  # stale
        {"Content-Type": "application/json"},                                          # unsigned
    ]
    for headers in cases:
        status, body, _ = await api.post(raw, headers, key=WEBSITE_KEY)
        assert (status, body) == (401, {"error": "unauthorized", "reason": "missing or invalid credentials"})
    status, _, _ = await api.post(raw, ok)   # signed but no key
    assert status == 401
    assert len(api.publisher.batches) == 1


# --- Kafka unavailable ----------------------------------------------------------------------------

async def test_kafka_unavailable_is_503_with_retry_after_never_202(api):
    api.publisher.down = True
    status, body, headers = await api.post([event(1), event(2, payload={})])
    assert status == 503
    assert body["error"] == "unavailable" and "nothing was accepted" in body["reason"]
    assert int(headers["Retry-After"]) > 0
    assert api.metric("leadflow_ingest_events_accepted_total", source="website", via="http") == 0


async def test_readiness_follows_kafka(api):
    resp = await api.client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ready"
    api.publisher.down = True
    resp = await api.client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "not_ready" and body["checks"]["kafka"].startswith("unavailable")
    resp = await api.client.get("/healthz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok"}


# --- metrics and the document -----------------------------------------------------------------------

async def test_metrics_count_accepted_refused_and_latency(api):
    await api.post([event(1), event(2, payload={"score": "x"}), event(3, source="Some Custom CRM")])
    await api.post(b"{", {"Content-Type": "application/json"})
    assert api.metric("leadflow_ingest_events_accepted_total", source="website", via="http") == 1
    assert api.metric("leadflow_ingest_events_accepted_total", source="other", via="http") == 1
    assert api.metric("leadflow_ingest_events_refused_total", source="website", via="http", field="payload.score") == 1
    assert api.metric("leadflow_ingest_events_refused_total", source="unknown", via="http", field="json") == 1
    assert api.metric("leadflow_ingest_request_duration_seconds_count", route="/v1/events", status="202") == 1
    assert api.metric("leadflow_ingest_request_duration_seconds_count", route="/v1/events", status="400") == 1
    resp = await api.client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200
    for name in ("leadflow_ingest_events_accepted_total", "leadflow_ingest_events_refused_total",
                 "leadflow_ingest_request_duration_seconds_bucket", "leadflow_errors_total"):
        assert name in text


async def test_unknown_routes_are_labelled_unmatched(api):
    resp = await api.client.get("/no/such/path/123")
    assert resp.status == 404
    assert api.metric("leadflow_ingest_request_duration_seconds_count", route="unmatched", status="404") == 1


async def test_openapi_document_is_served(api):
    resp = await api.client.get("/openapi.json")
    assert resp.status == 200
    assert await resp.json() == build_openapi()


async def test_with_keys_every_route_but_the_health_checks_needs_one(keyed_api):
    """Outside dev mode /metrics and /openapi.json answer only with a valid key; the health
    checks answer anyone (a load balancer or an orchestrator probes them without secrets)."""
    client = keyed_api.client
    for path in ("/metrics", "/openapi.json"):
        for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": f"Basic {WEBSITE_KEY}"}):
            resp = await client.get(path, headers=headers)
            assert resp.status == 401, (path, headers)
            assert (await resp.json())["error"] == "unauthorized"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        resp = await client.get(path, headers={"Authorization": f"Bearer {HUBSPOT_KEY}"})
        assert resp.status == 200, path
    status, _body, _ = await keyed_api.post(event(1))
    assert status == 401
    for path in ("/healthz", "/readyz"):
        resp = await client.get(path)
        assert resp.status == 200, path
    documented = build_openapi()["paths"]
    keyed = {path for path, ops in documented.items() for op in ops.values() if op["security"]}
    assert keyed == {"/v1/events", "/metrics", "/openapi.json"}


async def test_requests_past_the_inflight_cap_get_503_at_once_not_memory():
    """While Kafka is slow, bodies waiting for acknowledgements are capped: the next request is
    answered 503 with Retry-After at once instead of being held in memory."""
    import asyncio

    class SlowPublisher(RecordingPublisher):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def publish(self, records) -> None:
            await self.release.wait()
            await super().publish(records)

    first = json.dumps([event(1)]).encode()
    registry = CollectorRegistry()
    app = create_app(make_settings(), IngestOptions(consume_inbound=False, max_inflight_bytes=len(first) + 10), registry)
    publisher = SlowPublisher()
    app[SERVICE_KEY].publisher = publisher
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        headers = {"Content-Type": "application/json"}
        pending = asyncio.create_task(client.post("/v1/events", data=first, headers=headers))
        while app[SERVICE_KEY]._inflight_bytes == 0:
            await asyncio.sleep(0.01)
        resp = await client.post("/v1/events", data=json.dumps([event(2)]), headers=headers)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == str(IngestOptions().retry_after_s)
        assert "waiting for the event log" in (await resp.json())["reason"]
        publisher.release.set()
        assert (await pending).status == 202
        assert [r.key for r in publisher.records] == [b"L-1"]
        assert app[SERVICE_KEY]._inflight_bytes == 0
        resp = await client.post("/v1/events", data=json.dumps([event(3)]), headers=headers)
        assert resp.status == 202
    finally:
        await client.close()
