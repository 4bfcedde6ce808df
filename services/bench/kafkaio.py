"""Kafka around the measured parts: preloading an input topic fast, and watching an output topic
(read_committed, as a downstream consumer sees it) to time when records arrive there."""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.common.config import Settings
from services.common.kafka import make_producer, send_batched


async def produce_records(settings: Settings, topic: str, records: Sequence[tuple[bytes, bytes]]) -> int:
    """Write (key, value) records to `topic`, partitioned by key like every leadflow producer,
    in whole batches (idempotent, acks=all). Returns how many were written."""
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        futures: list = []
        await send_batched(producer, topic, records, len(await producer.partitions_for(topic)), futures)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(records)


async def create_log_append_topic(settings: Settings, name: str) -> None:
    """Create `name` (partitions and replication from settings) with broker-side timestamps
    (message.timestamp.type=LogAppendTime): each record then carries the time the broker wrote it,
    which times a part's output independently of when and how fast anyone reads it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="leadflow-bench")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(
            name, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication,
            topic_configs={"message.timestamp.type": "LogAppendTime",
                           "min.insync.replicas": str(settings.topic_min_insync_replicas)},
        )])
    finally:
        await admin.close()


async def group_members(settings: Settings, group_id: str) -> tuple[str, int]:
    """(state, member count) of a consumer group, e.g. ("Stable", 2)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="leadflow-bench")
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    for response in responses:
        for group in response.groups:
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            if group[1] == group_id:
                return group[2], len(group[5])
    return "Unknown", 0


async def wait_group(settings: Settings, group_id: str, members: int, timeout_s: float) -> bool:
    """Wait until the group is Stable with `members` members."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state, count = await group_members(settings, group_id)
        except Exception:  # noqa: BLE001 - the coordinator is still being elected
            state, count = "Unknown", 0
        if state == "Stable" and count == members:
            return True
        await asyncio.sleep(0.3)
    return False


@dataclass
class Arrivals:
    """What an Observer saw: the total count, when the first and the last records arrived, and
    the broker timestamps (ms) of the records (LogAppendTime on topics the bench creates)."""

    count: int = 0
    first_at: float | None = None     # time.time() of the first poll that returned records
    first_count: int = 0              # records that first poll returned
    last_at: float | None = None      # time.time() of the poll that returned the last record
    timestamps: list[int] = field(default_factory=list)

    def broker_window(self) -> tuple[int, float] | None:
        """(records written after the first millisecond, seconds from the first to the last
        broker timestamp); None without two distinct timestamps."""
        ts = self.timestamps
        if not ts:
            return None
        lo, hi = min(ts), max(ts)
        if hi <= lo:
            return None
        return sum(1 for t in ts if t > lo), (hi - lo) / 1000.0


# How long the broker parks a reader's fetch when nothing new is committed: a parked fetch answers
# as soon as records are there, so this only sets how often an idle reader asks again (each ask is
# broker CPU charged to the pipeline's Kafka figure). LEADFLOW_BENCH_READER_FETCH_MAX_WAIT_MS.
READER_FETCH_MAX_WAIT_MS = int(os.environ.get("LEADFLOW_BENCH_READER_FETCH_MAX_WAIT_MS", "20"))


@dataclass
class Observer:
    """Counts the records arriving on a topic, read_committed, from its beginning.

    `on_record(record, now)` (optional) sees every record with the wall time it arrived.
    """

    settings: Settings
    topic: str
    on_record: Callable | None = None
    arrivals: Arrivals = field(default_factory=Arrivals)
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
            fetch_max_wait_ms=READER_FETCH_MAX_WAIT_MS, max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(self.topic)
        for _ in range(50):
            if partitions:
                break
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer

    async def poll(self, timeout_ms: int = 50) -> int:
        """One fetch; returns how many records it brought."""
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=20000)
        n = sum(len(records) for records in batches.values())
        if n:
            now = time.time()
            a = self.arrivals
            if a.first_at is None:
                a.first_at = now
                a.first_count = n
            a.count += n
            a.last_at = now
            stamps = a.timestamps
            for records in batches.values():
                stamps.extend(r.timestamp for r in records)
            if self.on_record is not None:
                for records in batches.values():
                    for record in records:
                        self.on_record(record, now)
        return n

    async def wait_for(self, expected: int, timeout_s: float, stalled_s: float | None = None,
                       alive: Callable[[], bool] | None = None) -> bool:
        """Poll until `expected` records arrived; False on timeout, when nothing arrived for
        `stalled_s` after something did, or when `alive()` says the producer side died."""
        deadline = time.monotonic() + timeout_s
        last_progress = time.monotonic()
        while self.arrivals.count < expected:
            if time.monotonic() > deadline:
                return False
            if await self.poll():
                last_progress = time.monotonic()
            elif stalled_s is not None and self.arrivals.count and time.monotonic() - last_progress > stalled_s:
                return False
            if alive is not None and not alive():
                # Records the producer committed before it died may still be in flight to us.
                await self.poll(200)
                return self.arrivals.count >= expected
        return True

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
