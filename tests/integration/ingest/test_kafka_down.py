"""A broker that is down makes HTTP answer 503 with Retry-After, never 202; once the broker is
back, the service accepts again by itself, and everything it answered 202 for is on the topic."""
from __future__ import annotations

import asyncio
import shutil
import time
import uuid

import pytest

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.kafka import ensure_topics
from services.stack.kafka_node import KafkaNode
from services.stack.process import free_port

from ingest_it_helpers import fast_options, ingest_client, read_topic

pytestmark = pytest.mark.stack

CODEC = AvroCodec("event_envelope")


def event(i: int) -> dict:
    return {"event_id": f"out-{i}", "lead_id": f"L-{i % 5}", "type": "lead.activity",
            "occurred_at": "2026-11-02T10:00:00Z", "source": "website", "payload": {"kind": "page_view"}}


async def post(client, events) -> tuple[int, dict, dict]:
    resp = await client.post("/v1/events", json=events)
    return resp.status, await resp.json(), dict(resp.headers)


async def test_no_broker_listening_means_503_and_not_ready(settings):
    dead = settings.with_changes(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with ingest_client(dead, fast_options(consume_inbound=True), wait_kafka=False) as client:
        for i in range(3):
            status, body, headers = await post(client, [event(i)])
            assert status == 503, body
            assert body["error"] == "unavailable"
            assert int(headers["Retry-After"]) >= 1
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["status"] == "not_ready"
        resp = await client.get("/healthz")
        assert resp.status == 200
        # invalid events are still refused without Kafka: validation does not need it
        status, body, _ = await post(client, [{"event_id": "x"}])
        assert status == 422


async def test_broker_stopped_then_restarted(stack, settings):
    node = KafkaNode(stack.home / f"outage-kafka-{uuid.uuid4().hex[:6]}", free_port(), free_port(), heap="384m")
    await asyncio.to_thread(node.start)
    try:
        s = settings.with_changes(kafka_bootstrap=node.bootstrap)
        await ensure_topics(s)
        accepted: list[str] = []
        async with ingest_client(s, fast_options(consume_inbound=False, ack_timeout_s=3.0)) as client:
            status, body, _ = await post(client, [event(0), event(1)])
            assert status == 202 and body["accepted"] == 2
            accepted += ["out-0", "out-1"]

            await asyncio.to_thread(node.stop)
            statuses = []
            for i in range(2, 6):
                status, body, headers = await post(client, [event(i)])
                statuses.append(status)
                assert status == 503, f"a request while the broker is down was answered {status}: {body}"
                assert int(headers["Retry-After"]) >= 1
            resp = await client.get("/readyz")
            assert resp.status == 503

            await asyncio.to_thread(node.start)
            deadline = time.monotonic() + 90
            i = 100
            while True:
                status, body, _ = await post(client, [event(i)])
                assert status in (202, 503), (status, body)
                if status == 202:
                    accepted.append(f"out-{i}")
                    break
                assert time.monotonic() < deadline, "ingest did not recover after the broker came back"
                i += 1
                await asyncio.sleep(0.5)
            resp = await client.get("/readyz")
            assert resp.status == 200

        records = await read_topic(s, s.topics.events, len(accepted), timeout=60, settle=1.0)
        on_topic = {event_from_avro(CODEC.decode(r.value)).event_id for r in records}
        assert set(accepted) <= on_topic, "every event answered 202 is on the topic"
    finally:
        await asyncio.to_thread(node.stop)
        shutil.rmtree(node.home, ignore_errors=True)
