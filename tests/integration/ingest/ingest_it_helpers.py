"""Helpers for the ingest integration tests: the service in process on a free port (against the
session's real Kafka, with the test's own topics), and reading a topic back."""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from services.common.config import Settings
from services.common.kafka import make_consumer, make_producer
from services.ingest.app import SERVICE_KEY, IngestOptions, IngestService, create_app
from services.ingest.inbound import InboundOptions


def fast_options(**changes) -> IngestOptions:
    """Short timeouts so failure paths finish quickly in tests."""
    base = IngestOptions(ack_timeout_s=5.0, kafka_retry_s=0.5, producer_request_timeout_ms=5000,
                         inbound=InboundOptions(fetch_timeout_ms=100, retry_backoff_s=0.5, kafka_timeout_s=15))
    from dataclasses import replace

    return replace(base, **changes)


@contextlib.asynccontextmanager
async def ingest_client(settings: Settings, options: IngestOptions | None = None,
                        wait_kafka: bool = True) -> AsyncIterator[TestClient]:
    """The ingest application served on 127.0.0.1:<free port>; `client.app[SERVICE_KEY]` is the service."""
    app = create_app(settings, options or fast_options(consume_inbound=False), CollectorRegistry())
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        if wait_kafka:
            assert await service_of(client).publisher.wait_available(30), "ingest did not connect to Kafka"
        yield client
    finally:
        await client.close()


def service_of(client: TestClient) -> IngestService:
    return client.app[SERVICE_KEY]


async def read_topic(settings: Settings, topic: str, count: int, timeout: float = 60.0,
                     settle: float = 0.0) -> list[ConsumerRecord]:
    """Every record of `topic` (read_committed, from the beginning) once at least `count` are there;
    with `settle`, keep reading that much longer to catch records beyond `count`."""
    consumer = make_consumer(settings, None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        settle_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            if len(records) >= count:
                if settle_until is None:
                    settle_until = time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
        return records
    finally:
        await consumer.stop()


async def produce(settings: Settings, topic: str, items: list[tuple[bytes | None, bytes | None]],
                  headers=None) -> None:
    """Write raw (key, value) records as an upstream system would."""
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
