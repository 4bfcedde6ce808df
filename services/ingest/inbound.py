"""The `leadflow.inbound` consumer: raw JSON from upstream -> leadflow.events, or leadflow.dlq.

Each record's value is validated like an HTTP event (one JSON object per record, contract §1–2).
A valid one is written to leadflow.events exactly as the HTTP path writes it (key lead_id,
Avro single-object encoded envelope, headers `source` and `ingest-via: kafka`); a bad one goes
to leadflow.dlq byte for byte (same key, same value) with headers `leadflow-error-field`,
`leadflow-error-reason`, `leadflow-origin-topic`, `-partition` and `-offset`.

Guarantee: exactly once into leadflow.events and leadflow.dlq (for read_committed readers, which
every leadflow consumer is). For each input partition there is one transactional producer,
`transactional_id = leadflow-ingest-<inbound topic>-<partition>`, and each round of a partition is
ONE Kafka transaction holding its events records, its DLQ records AND the consumer group's offset
for that partition (`send_offsets_to_transaction`). So the offset is committed only together with
both writes, after the broker acknowledged them all: either all three become visible or none
does. Whoever starts the producer of a partition fences every older producer with the same id (a
zombie instance left behind by a rebalance can no longer commit), and the broker aborts what the
zombie left open; only then does this instance read the committed offset and seek there. A failed
round is aborted and the partition is re-read from its committed offset.

What this cannot remove: an upstream system that publishes the same event twice to
leadflow.inbound (its own retry) produces two records, and both are forwarded. The envelope's
`event_id` covers that: the lifecycle keeps the first and ignores a repeated id, so an event
counts once whatever path and retries it took.

Throughput note: a round is one transaction per partition that had records (a few round trips
each), run concurrently; rounds are up to `max_records` records.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced
from aiokafka.producer.transaction_manager import TransactionState

from services.common.avro_codec import AvroCodec
from services.common.config import Settings
from services.common.envelope import InvalidEvent, parse_event
from services.common.kafka import RebalanceDelegate, group_id_for, leave_group, make_consumer, make_producer
from services.ingest.metrics import IngestMetrics
from services.ingest.records import OutRecord, decode_record_value, dlq_record, error_field, event_record

log = logging.getLogger("leadflow.ingest.inbound")
FENCED_ERRORS = (ProducerFenced, InvalidProducerEpoch)


def default_group_id(settings: Settings) -> str:
    return group_id_for(settings, "ingest")


def transactional_id(input_topic: str, partition: int) -> str:
    return f"leadflow-ingest-{input_topic}-{partition}"


@dataclass(frozen=True)
class InboundOptions:
    group_id: str | None = None        # None: default_group_id(settings)
    max_records: int = 1000            # records per getmany round
    fetch_timeout_ms: int = 200
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    kafka_timeout_s: float = 30.0      # bound of one transaction / one recovery
    retry_backoff_s: float = 1.0       # before re-reading a partition whose round failed
    fenced_backoff_s: float = 30.0     # before re-claiming a partition another producer fenced us from


@dataclass
class RoundOutput:
    """What one partition's records become: the records to write and what to count once written."""

    records: list[OutRecord] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)                 # sources
    refused: list[tuple[object, str]] = field(default_factory=list)   # (source, field)


def route_records(records, codec: AvroCodec, events_topic: str, dlq_topic: str, now: datetime) -> RoundOutput:
    """Validate a partition's records in order; pure apart from the clock passed in."""
    out = RoundOutput()
    for record in records:
        source: object = None
        try:
            obj = decode_record_value(record.value)
        except ValueError as exc:
            field_name, reason = "json", str(exc)
        else:
            if isinstance(obj, dict):
                source = obj.get("source")
            try:
                event = parse_event(obj, now=now)
                out.records.append(event_record(codec, events_topic, event, "kafka"))
            except InvalidEvent as exc:
                field_name, reason = error_field(exc), exc.reason
            else:
                out.accepted.append(event.source)
                continue
        out.records.append(dlq_record(dlq_topic, record, field_name, reason))
        out.refused.append((source, field_name))
    return out


class _Partition:
    __slots__ = ("tp", "producer", "ready", "retry_at", "next_offset")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.producer: AIOKafkaProducer | None = None
        self.ready = False
        self.retry_at = 0.0
        self.next_offset: int | None = None


class InboundConsumer:
    def __init__(self, settings: Settings, metrics: IngestMetrics, options: InboundOptions | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.options = options or InboundOptions()
        self.group_id = self.options.group_id or default_group_id(settings)
        self.input_topic = settings.topics.inbound
        self.events_topic = settings.topics.events
        self.dlq_topic = settings.topics.dlq
        self.codec = AvroCodec("event_envelope")
        self.consumer = None
        self._parts: dict[TopicPartition, _Partition] = {}
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.rounds = 0

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group. Raises when Kafka cannot be reached (the caller retries)."""
        o = self.options
        consumer = make_consumer(
            self.settings, self.group_id,
            max_poll_records=o.max_records,
            session_timeout_ms=o.session_timeout_ms,
            heartbeat_interval_ms=o.heartbeat_interval_ms,
            client_id=f"leadflow-ingest-{self.settings.instance_id}",
        )
        try:
            await consumer.start()
        except BaseException:
            try:
                await asyncio.wait_for(consumer.stop(), 10)
            except Exception:  # noqa: BLE001 - the start failure is what gets raised
                log.warning("inbound: stopping the consumer after a failed start failed too", exc_info=True)
            raise
        consumer.subscribe([self.input_topic], listener=RebalanceDelegate(self))
        self.consumer = consumer
        log.info("inbound consumer started: group %s, %s -> %s / %s", self.group_id, self.input_topic,
                 self.events_topic, self.dlq_topic)

    def request_stop(self) -> None:
        self._stopping.set()

    @property
    def running(self) -> bool:
        return self.consumer is not None and not self._stopping.is_set()

    async def run(self) -> None:
        """Consume until request_stop(); the round in hand is finished first."""
        consumer, o = self.consumer, self.options
        while not self._stopping.is_set():
            await self._recover_due()
            try:
                batches = await consumer.getmany(timeout_ms=o.fetch_timeout_ms, max_records=o.max_records)
            except KafkaError as exc:
                log.warning("fetch failed: %r", exc)
                self.metrics.error("kafka")
                await asyncio.sleep(o.retry_backoff_s)
                continue
            if batches:
                async with self._lock:
                    await self._process(batches)
            self._update_lag()

    async def close(self) -> None:
        """Leave the group (the revoke callback closes the producers), then release the rest."""
        self._stopping.set()
        await leave_group(self, log)
        self.consumer = None

    # --- rebalance ------------------------------------------------------------------------------

    async def _on_revoked(self, revoked) -> None:
        async with self._lock:   # the round in hand finishes (committed or aborted) first
            for tp in revoked:
                part = self._parts.pop(tp, None)
                if part is not None:
                    await self._release(part)

    async def _on_assigned(self, assigned) -> None:
        async with self._lock:
            new = []
            for tp in assigned:
                if tp.topic != self.input_topic:
                    continue
                part = self._parts.get(tp)
                if part is None:
                    part = self._parts[tp] = _Partition(tp)
                new.append(part)
            await asyncio.gather(*(self._recover(part) for part in new))
        log.info("inbound partitions assigned: %s", sorted(tp.partition for tp in assigned))

    async def _release(self, part: _Partition) -> None:
        part.ready = False
        producer, part.producer = part.producer, None
        if producer is not None:
            await _stop_producer(producer)

    # --- recovery -------------------------------------------------------------------------------

    async def _recover_due(self) -> None:
        now = time.monotonic()
        if any(not p.ready and p.retry_at <= now for p in self._parts.values()):
            async with self._lock:
                due = [p for p in self._parts.values() if not p.ready and p.retry_at <= now]
                await asyncio.gather(*(self._recover(p) for p in due))

    async def _recover(self, part: _Partition) -> None:
        """(Re)start the partition's transactional producer (fencing older ones and aborting what
        they left open), then continue from the group's committed offset. On failure the partition
        stays paused and is retried later."""
        tp, o = part.tp, self.options
        part.ready = False
        try:
            self.consumer.pause(tp)
        except Exception:  # noqa: BLE001 - not assigned any more
            return
        try:
            if part.producer is not None:
                old, part.producer = part.producer, None
                await _stop_producer(old)
            producer = make_producer(
                self.settings,
                transactional_id=transactional_id(tp.topic, tp.partition),
                client_id=f"leadflow-ingest-{self.settings.instance_id}-p{tp.partition}",
                linger_ms=0,
                max_request_size=2 * 1024 * 1024,
                retry_backoff_ms=20,
            )
            part.producer = producer
            await asyncio.wait_for(producer.start(), o.kafka_timeout_s)
            await asyncio.wait_for(asyncio.shield(producer._txn_manager.wait_for_pid()), o.kafka_timeout_s)
            committed = await asyncio.wait_for(self.consumer.committed(tp), o.kafka_timeout_s)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
                part.next_offset = None
            else:
                self.consumer.seek(tp, committed)
                part.next_offset = committed
            self.consumer.resume(tp)
            part.ready = True
        except Exception as exc:  # noqa: BLE001 - any failure: stay paused, retry later
            log.warning("inbound partition %d: recovery failed (%r); retrying in %.1fs",
                        tp.partition, exc, o.retry_backoff_s)
            self.metrics.error("kafka")
            part.retry_at = time.monotonic() + o.retry_backoff_s

    # --- one round ------------------------------------------------------------------------------

    async def _process(self, batches) -> None:
        now = datetime.now(timezone.utc)
        work = []
        for tp, records in batches.items():
            if not records:
                continue
            self.metrics.records.labels("ingest", tp.topic).inc(len(records))
            part = self._parts.get(tp)
            if part is None or not part.ready:
                continue   # its recovery seeks back to the committed offset
            output = route_records(records, self.codec, self.events_topic, self.dlq_topic, now)
            work.append(self._publish(part, output, records[-1].offset + 1))
        if work:
            await asyncio.gather(*work)
            self.rounds += 1

    async def _publish(self, part: _Partition, output: RoundOutput, next_offset: int) -> None:
        try:
            await asyncio.wait_for(self._transaction(part.producer, part.tp, output.records, next_offset),
                                   self.options.kafka_timeout_s)
        except Exception as exc:  # noqa: BLE001 - nothing of the round is visible: re-read it
            fenced = isinstance(exc, FENCED_ERRORS) or (
                part.producer is not None and part.producer._txn_manager.is_fatal_error())
            log.warning("inbound partition %d: round failed (%r)%s; re-reading from the committed offset",
                        part.tp.partition, exc, " - fenced by another instance" if fenced else "")
            self.metrics.error("publish")
            part.ready = False
            part.retry_at = time.monotonic() + (self.options.fenced_backoff_s if fenced else self.options.retry_backoff_s)
            try:
                self.consumer.pause(part.tp)
            except Exception:  # noqa: BLE001 - revoked meanwhile: nothing left to pause
                log.debug("inbound partition %d: pause failed", part.tp.partition, exc_info=True)
            return
        part.next_offset = next_offset
        m = self.metrics
        for source in output.accepted:
            m.count_accepted(source, "kafka")
        for source, field_name in output.refused:
            m.count_refused(source, "kafka", field_name)
            m.count_dlq(field_name)

    async def _transaction(self, producer: AIOKafkaProducer, tp: TopicPartition, records: list[OutRecord],
                           next_offset: int) -> None:
        await producer.begin_transaction()
        try:
            send = producer.send
            futures = [await send(r.topic, r.value, key=r.key, headers=r.headers) for r in records]
            await producer.send_offsets_to_transaction({tp: next_offset}, self.group_id)
            await asyncio.gather(*futures)
            await producer.commit_transaction()
        except BaseException:
            await _abort_quietly(producer)
            raise

    # --- metrics --------------------------------------------------------------------------------

    def _update_lag(self) -> None:
        offsets = {p.tp: p.next_offset for p in self._parts.values() if p.ready and p.next_offset is not None}
        if offsets:
            try:
                self.metrics.lag.update(self.consumer, offsets)
            except Exception:  # noqa: BLE001 - a partition revoked meanwhile; the next round sets it
                log.debug("inbound: lag update skipped", exc_info=True)


async def _abort_quietly(producer: AIOKafkaProducer) -> None:
    txn = producer._txn_manager
    if txn is None or txn.state not in (TransactionState.IN_TRANSACTION, TransactionState.ABORTABLE_ERROR):
        return
    try:
        await asyncio.wait_for(producer.abort_transaction(), 10)
    except Exception:  # noqa: BLE001 - the next owner of the transactional id aborts it anyway
        log.warning("inbound: aborting a transaction failed; its next owner will abort it", exc_info=True)


async def _stop_producer(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 15)
    except Exception as exc:  # noqa: BLE001
        log.debug("producer stop: %r", exc)
