"""The HTTP path's producer: idempotent, acks=all, shared by all requests.

A request's records are all handed to the producer first and their delivery futures awaited
together once (no round trip per event); the request is answered 202 only when every future
resolved, i.e. every record is on all in-sync replicas. Anything else (Kafka unreachable at
start, a send or an acknowledgement failing, no answer within `ack_timeout_s`) raises
`KafkaUnavailable`, which the handler turns into 503 with Retry-After: the client must send the
request again. Records of a failed request may still have reached the topic, so a retry can
duplicate them; the envelope's `event_id` makes that harmless (the lifecycle ignores a repeated
id). That is the honest guarantee over HTTP: at least once, effectively once downstream.

The producer starts in the background and is rebuilt after a failure (a fresh producer id, so
no idempotence state of a broken session is carried over); until it is up, requests get 503 and
/readyz says not ready.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.config import Settings
from services.common.kafka import make_producer
from services.ingest.records import OutRecord

log = logging.getLogger("leadflow.ingest")


class KafkaUnavailable(Exception):
    """Kafka did not take (or did not confirm) the records; answer 503."""


class HttpPublisher:
    def __init__(self, settings: Settings, *, ack_timeout_s: float = 10.0, retry_s: float = 2.0,
                 request_timeout_ms: int = 15000, on_error=None) -> None:
        self.settings = settings
        self.ack_timeout_s = ack_timeout_s
        self.retry_s = retry_s
        self.request_timeout_ms = request_timeout_ms
        self._on_error = on_error or (lambda kind: None)
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._retired: set[asyncio.Task] = set()

    @property
    def available(self) -> bool:
        return self._producer is not None

    @property
    def producer(self) -> AIOKafkaProducer | None:
        return self._producer

    def start(self) -> None:
        """Start connecting in the background (the HTTP server does not wait for Kafka)."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep_connected(), name="ingest-http-producer")

    async def wait_available(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._producer is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._producer is not None

    async def _keep_connected(self) -> None:
        while not self._closing:
            if self._producer is None:
                producer = make_producer(
                    self.settings, client_id=f"leadflow-ingest-http-{self.settings.instance_id}",
                    request_timeout_ms=self.request_timeout_ms,
                )
                try:
                    await asyncio.wait_for(producer.start(), self.request_timeout_ms / 1000)
                except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                    log.warning("Kafka producer cannot start (%r); retrying in %.1fs", exc, self.retry_s)
                    self._on_error("kafka")
                    await _stop_quietly(producer)
                else:
                    self._producer = producer
                    log.info("Kafka producer connected to %s", self.settings.kafka_bootstrap)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.retry_s)
            except asyncio.TimeoutError:
                pass

    def _retire(self, producer: AIOKafkaProducer) -> None:
        """Drop a producer after a failure; the loop builds a new one. Its pending records keep
        their own futures; closing it waits for them (bounded) in the background."""
        if self._producer is producer:
            self._producer = None
            self._wake.set()
            task = asyncio.create_task(_stop_quietly(producer, self.request_timeout_ms / 1000 + 5))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    async def publish(self, records: Sequence[OutRecord]) -> None:
        """Send every record, then wait for all acknowledgements. Raises KafkaUnavailable."""
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable("Kafka producer not connected")
        try:
            await asyncio.wait_for(self._send_all(producer, records), self.ack_timeout_s)
        except asyncio.TimeoutError:
            log.warning("Kafka did not acknowledge %d records within %.1fs", len(records), self.ack_timeout_s)
            self._on_error("publish")
            self._retire(producer)
            raise KafkaUnavailable("Kafka did not acknowledge in time") from None
        except (KafkaError, OSError) as exc:
            log.warning("publishing %d records failed: %r", len(records), exc)
            self._on_error("publish")
            self._retire(producer)
            raise KafkaUnavailable(f"publishing failed: {exc.__class__.__name__}") from None

    @staticmethod
    async def _send_all(producer: AIOKafkaProducer, records: Sequence[OutRecord]) -> None:
        send = producer.send
        futures = [
            await send(r.topic, r.value, key=r.key, headers=r.headers)
            for r in records
        ]
        await asyncio.gather(*futures)

    async def kafka_ready(self, topic: str, timeout: float = 3.0) -> tuple[bool, str]:
        """A fresh metadata request answered by the cluster, with `topic` in it. (ok, detail)"""
        producer = self._producer
        if producer is None:
            return False, "producer not connected"
        try:
            cluster = await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            return False, f"metadata request failed ({exc.__class__.__name__})"
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            return False, f"topic {topic} not found"
        return True, f"{len(cluster.brokers())} broker(s), {topic}: {len(partitions)} partition(s)"

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass  # what cancel() asked for
            except Exception:  # noqa: BLE001 - shutting down: report, then go on closing
                log.warning("the producer's reconnect task had failed", exc_info=True)
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer, self.request_timeout_ms / 1000 + 5)
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)


async def _stop_quietly(producer: AIOKafkaProducer, timeout: float = 10.0) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except Exception as exc:  # noqa: BLE001 - closing a broken client: nothing left to do
        log.debug("producer stop: %r", exc)
