"""Kafka plumbing shared by the services: topic creation and client factories with the
settings every leadflow client needs (acks=all, idempotence, read_committed, manual commits)."""
from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import Any, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from services.common.config import Settings


def lead_key(lead_id: str) -> bytes:
    """Records are keyed by lead id so a lead's events stay in order on one partition."""
    return lead_id.encode("utf-8")


async def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Create the pipeline's topics with the configured partitions and replication.

    Partition count and replication come from settings, never code: a multi-broker deployment
    sets LEADFLOW_TOPIC_REPLICATION=3 and LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS=2. Returns the
    topics that were created now (existing ones are left as they are).
    """
    names = list(names) if names is not None else list(settings.topics.all())
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="leadflow-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication,
                topic_configs={"min.insync.replicas": str(settings.topic_min_insync_replicas)},
            )
            for name in names if name not in existing
        ]
        if not wanted:
            return []
        try:
            await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass  # created concurrently by another starter: the wanted state holds
        return [t.name for t in wanted]
    finally:
        await admin.close()


# aiokafka retries the first AddPartitionsToTxn of a transaction that the coordinator refuses
# with CONCURRENT_TRANSACTIONS (the previous transaction's markers are still being written,
# KAFKA-5477) after a fixed 20 ms, its module constant `sender.BACKOFF_OVERRIDE`. Back-to-back
# transactions of one producer (every leadflow publisher) hit that window most of the time:
# measured on one local broker, a 300-record transaction took 25 ms at the median with 20 ms and
# 3.5-4.7 ms with 5 ms (LEADFLOW_KAFKA_TXN_RETRY_MS, the default). The retry is a small request
# to the coordinator; a cluster whose markers take longer to replicate may want a larger value.
def shorten_concurrent_transactions_retry(seconds: float) -> None:
    """Set aiokafka's CONCURRENT_TRANSACTIONS retry (process-wide). Raises if the aiokafka in use
    has no such constant (the tuning would silently be lost otherwise)."""
    from aiokafka.producer import sender

    if not isinstance(getattr(sender, "BACKOFF_OVERRIDE", None), (int, float)):
        raise RuntimeError("aiokafka.producer.sender.BACKOFF_OVERRIDE is gone: review "
                           "shorten_concurrent_transactions_retry for this aiokafka version")
    sender.BACKOFF_OVERRIDE = seconds


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30000,
    }
    options.update(overrides)
    if options.get("transactional_id") is not None:
        shorten_concurrent_transactions_retry(settings.kafka_txn_retry_ms / 1000)
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, group_id: str | None, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 2000,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def group_id_for(settings: Settings, service: str) -> str:
    """`leadflow-<service>` on the standard topics; another topic prefix (a test, a second
    pipeline on the same cluster) gets a consumer group of its own."""
    prefix = settings.topics.prefix
    return f"leadflow-{service}" if prefix == "leadflow." else f"leadflow-{service}-{prefix.rstrip('.')}"


async def leave_group(owner, log: logging.Logger, timeout_s: float = 30.0) -> None:
    """Stop `owner.consumer` (leaving the group: the revoke callback runs) within `timeout_s`,
    then `await owner._release(part)` for every partition still in `owner._parts`, and empty it.
    A consumer that does not stop cleanly is logged and the release goes on: the next owner of
    the partitions recovers them whatever this one left."""
    if owner.consumer is not None:
        try:
            await asyncio.wait_for(owner.consumer.stop(), timeout_s)
        except Exception as exc:  # noqa: BLE001 - shutting down: report, then release the rest
            log.warning("consumer stop: %r", exc)
    for part in list(owner._parts.values()):
        await owner._release(part)
    owner._parts.clear()


class RebalanceDelegate(ConsumerRebalanceListener):
    """Hands aiokafka's rebalance callbacks to the owner's `_on_revoked` / `_on_assigned`."""

    def __init__(self, owner) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked):
        await self.owner._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned):
        await self.owner._on_assigned(assigned)


@lru_cache(maxsize=262144)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def partition_for(key: bytes, partitions: int) -> int:
    """The Java client's (and aiokafka's) default partitioner, memoised per key."""
    return _key_hash(key) % partitions


async def send_batched(producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes, bytes]],
                       partitions: int, futures: list) -> None:
    """Send (key, value) records in whole batches per partition, partitioned by key like every
    leadflow producer, in order per partition: one `send_batch` per full batch instead of one
    `send` per record. Each batch's delivery future is appended to `futures` (the caller awaits
    them, inside or outside a transaction)."""
    builders: dict[int, object] = {}
    for key, value in records:
        p = partition_for(key, partitions)
        builder = builders.get(p)
        if builder is None:
            builder = builders[p] = producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            futures.append(await producer.send_batch(builder, topic, partition=p))
            builder = builders[p] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value)} bytes for {topic} does not fit an empty batch")
    for p, builder in builders.items():
        if builder.record_count():
            futures.append(await producer.send_batch(builder, topic, partition=p))
