"""The lifecycle service: leadflow.events -> the domain -> Postgres event store -> leadflow.lifecycle.

Exactly once, in short (the argument is in docs/lifecycle.md):
- Postgres is the source of truth, including the consumer position: per input partition,
  consumer_offsets.next_offset ("stored up to") advances in the SAME transaction as the batch's
  events and projection, with an optimistic check on its previous value.
- After that commit, one Kafka transaction per input partition (its own transactional producer)
  publishes one lifecycle record per applied event AND moves the group offset ("published up to").
- On assignment (and whenever in doubt) a partition is recovered from the store: start a fresh
  producer (fencing older ones), read stored_upto and published_upto, re-publish the stored events
  in [published_upto, stored_upto) in one transaction that moves the group offset to stored_upto,
  and seek there.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Mapping

import asyncpg
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from services.common.avro_codec import AvroCodec
from services.common.config import Settings, env_flag, env_number
from services.common.kafka import (
    RebalanceDelegate, ensure_topics, group_id_for, lead_key, leave_group, make_consumer,
)
from services.common.metrics import serve_metrics
from services.lifecycle import store
from services.lifecycle.batch import (
    LeadEntry, PartitionInput, RoundPlan, decode_partition, lifecycle_record_from_row, plan_round,
)
from services.lifecycle.metrics import LifecycleMetrics
from services.lifecycle.publisher import FENCED_ERRORS, PartitionPublisher
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder

log = logging.getLogger("leadflow.lifecycle")


def default_group_id(settings: Settings) -> str:
    return group_id_for(settings, "lifecycle")


@dataclass(frozen=True)
class LifecycleOptions:
    """Tuning of the service (environment LEADFLOW_LIFECYCLE_*, read once at start-up)."""

    group_id: str | None = None          # None: default_group_id(settings)
    max_records: int = 5000              # records per getmany round
    fetch_timeout_ms: int = 100
    cache_size: int = 100_000            # cached lead states per input partition (LRU)
    pipeline: bool = True                # publish a round while the next one is stored
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    leads_gauge_interval_s: float = 30.0
    retry_backoff_s: float = 1.0         # before retrying a partition whose recovery failed
    fenced_backoff_s: float = 30.0       # before re-claiming a partition another producer fenced us from
    kafka_timeout_s: float = 60.0
    # Least time between the starts of two rounds: records arriving meanwhile wait in the
    # consumer's buffer and join the next round. Each round costs two queries, a Postgres
    # transaction and a Kafka transaction per partition whatever its size, so at low rates tiny
    # rounds cost more than the events: at 1,000 events/s, 50 ms took the machine from 1.95 to
    # 1.6 busy cores and p99 from 243-300 to 176-200 ms (docs/performance.md). Kafka Streams'
    # commit.interval.ms is the same trade. 0: a round as soon as anything arrives.
    round_interval_ms: int = 50
    metrics_host: str = "127.0.0.1"     # LEADFLOW_LIFECYCLE_METRICS_HOST; 0.0.0.0 exposes /metrics
    serve_metrics: bool = True


def load_options(env: Mapping[str, str] | None = None) -> LifecycleOptions:
    env = os.environ if env is None else env
    d = LifecycleOptions()

    def num(name: str, default, cast=int, allow_zero: bool = False):
        return env_number(env, f"LEADFLOW_LIFECYCLE_{name}", default, cast, allow_zero)

    return LifecycleOptions(
        group_id=env.get("LEADFLOW_LIFECYCLE_GROUP_ID") or None,
        max_records=num("MAX_RECORDS", d.max_records),
        fetch_timeout_ms=num("FETCH_TIMEOUT_MS", d.fetch_timeout_ms),
        cache_size=num("CACHE_SIZE", d.cache_size),
        pipeline=env_flag(env, "LEADFLOW_LIFECYCLE_PIPELINE", True),
        session_timeout_ms=num("SESSION_TIMEOUT_MS", d.session_timeout_ms),
        heartbeat_interval_ms=num("HEARTBEAT_INTERVAL_MS", d.heartbeat_interval_ms),
        max_poll_interval_ms=num("MAX_POLL_INTERVAL_MS", d.max_poll_interval_ms),
        leads_gauge_interval_s=num("LEADS_GAUGE_INTERVAL_S", d.leads_gauge_interval_s, float),
        retry_backoff_s=num("RETRY_BACKOFF_S", d.retry_backoff_s, float),
        fenced_backoff_s=num("FENCED_BACKOFF_S", d.fenced_backoff_s, float),
        round_interval_ms=num("ROUND_INTERVAL_MS", d.round_interval_ms, allow_zero=True),
        metrics_host=env.get("LEADFLOW_LIFECYCLE_METRICS_HOST") or d.metrics_host,
    )


class Partition:
    """What this instance holds for one assigned input partition."""

    __slots__ = ("tp", "publisher", "next_offset", "published", "cache", "ready", "retry_at", "publishing",
                 "outbox", "outbox_offset", "outbox_started")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.publisher: PartitionPublisher | None = None
        self.next_offset = 0                 # stored up to (as this instance last stored or read it)
        self.published: int | None = None    # the group offset after our last transaction
        self.cache: OrderedDict[str, LeadEntry] = OrderedDict()
        self.ready = False                   # recovered: its records may be processed
        self.retry_at = 0.0
        self.publishing: asyncio.Task | None = None   # the loop publishing `outbox`
        # Stored rounds not yet in a transaction: their records in order, the group offset after
        # the last one, and when each round started (for the batch duration metric).
        self.outbox: list[tuple[bytes, bytes]] = []
        self.outbox_offset: int | None = None
        self.outbox_started: list[float] = []

    def drop_outbox(self) -> None:
        """Forget what is not published yet: recovery re-publishes it from the store."""
        self.outbox = []
        self.outbox_offset = None
        self.outbox_started = []


class _Round:
    """A planned round: its plan, its partitions, and the task writing it to Postgres."""

    __slots__ = ("plan", "parts", "started", "write")

    def __init__(self, plan: RoundPlan, parts: dict[int, Partition], started: float) -> None:
        self.plan = plan
        self.parts = parts
        self.started = started
        self.write: asyncio.Task | None = None


class LifecycleService:
    def __init__(self, settings: Settings, options: LifecycleOptions | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.options = options or LifecycleOptions()
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = LifecycleMetrics(self.registry)
        self.group_id = self.options.group_id or default_group_id(settings)
        self.input_topic = settings.topics.events
        self.output_topic = settings.topics.lifecycle
        self.in_codec = AvroCodec("event_envelope")
        self.out_codec = AvroCodec("lifecycle_record")
        self.decoder = EnvelopeDecoder(self.in_codec)
        self.encoder = LifecycleEncoder(self.out_codec, self.in_codec)
        self.pool: asyncpg.Pool | None = None
        self.consumer = None
        self._parts: dict[TopicPartition, Partition] = {}
        self._lock = asyncio.Lock()
        self._pending: _Round | None = None      # the round being written to Postgres
        self._stopping = asyncio.Event()
        self._metrics_runner = None
        self._gauge_task: asyncio.Task | None = None
        self.events_stored = 0
        self.rounds = 0
        self.transactions = 0                # Kafka transactions committed by the publishing loops
        self.phases: dict[str, float] = defaultdict(float)   # seconds spent per step of a round

    # --- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        s, o = self.settings, self.options
        applied = await store.prepare_store(s)
        if applied:
            log.info("event store migrations applied: %s", ", ".join(applied))
        self.pool = await store.create_store_pool(s, min_size=2, max_size=4)
        await ensure_topics(s, [self.input_topic, self.output_topic])
        if o.serve_metrics:
            self._metrics_runner = await serve_metrics(self.registry, o.metrics_host, s.lifecycle_metrics_port)
        self.consumer = make_consumer(
            s, self.group_id,
            max_poll_records=o.max_records,
            session_timeout_ms=o.session_timeout_ms,
            heartbeat_interval_ms=o.heartbeat_interval_ms,
            max_poll_interval_ms=o.max_poll_interval_ms,
            client_id=f"leadflow-lifecycle-{s.instance_id}",
        )
        await self.consumer.start()
        self.consumer.subscribe([self.input_topic], listener=RebalanceDelegate(self))
        self._gauge_task = asyncio.create_task(self._leads_gauge_loop())
        log.info("lifecycle service started: group %s, %s -> %s, instance %s",
                 self.group_id, self.input_topic, self.output_topic, s.instance_id)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until request_stop(); the round in hand is finished (stored and published)."""
        consumer, o = self.consumer, self.options
        interval = o.round_interval_ms / 1000
        round_at = 0.0
        while not self._stopping.is_set():
            if interval:
                wait = round_at + interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                round_at = time.monotonic()
            if self._recovery_due():
                async with self._lock:
                    await self._finish_pending()
                    await self._recover_due()
            try:
                t = time.perf_counter()
                batches = await consumer.getmany(timeout_ms=o.fetch_timeout_ms, max_records=o.max_records)
                self.phases["fetch"] += time.perf_counter() - t
            except KafkaError as exc:
                log.warning("fetch failed: %r", exc)
                self.metrics.error("kafka")
                await asyncio.sleep(0.5)
                continue
            async with self._lock:
                try:
                    await self._process(batches)
                except Exception as exc:  # noqa: BLE001 - e.g. Postgres gone while planning
                    log.warning("a round failed (%r); recovering the partitions from the store", exc)
                    self.metrics.error("postgres" if isinstance(exc, (asyncpg.PostgresError, OSError)) else "internal")
                    await self._finish_pending()
                    self._mark_for_recovery(list(self._parts.values()))
                    await asyncio.sleep(o.retry_backoff_s)
            self._update_lag()
        async with self._lock:
            await self._finish_pending()
            await self._drain_publishing(list(self._parts.values()))

    async def close(self) -> None:
        """Leave the group (the revoke callback closes the producers), then release everything."""
        if self._gauge_task is not None:
            self._gauge_task.cancel()
        if self._pending is not None:   # run() did not get to finish it
            try:
                async with self._lock:
                    await self._finish_pending()
                    await self._drain_publishing(list(self._parts.values()))
            except Exception as exc:  # noqa: BLE001 - the next owner recovers from the store
                log.warning("finishing the last round on close: %r", exc)
        await leave_group(self, log)
        if self.pool is not None:
            await self.pool.close()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()

    # --- rebalance ---------------------------------------------------------------------------------

    async def _on_revoked(self, revoked) -> None:
        async with self._lock:   # waits for the round in hand: it finishes (stored and published)
            await self._finish_pending()
            for tp in revoked:
                part = self._parts.pop(tp, None)
                if part is not None:
                    await self._release(part)
        if revoked:
            log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def _on_assigned(self, assigned) -> None:
        async with self._lock:
            await self._finish_pending()
            new = []
            for tp in assigned:
                if tp.topic != self.input_topic:
                    continue
                part = self._parts.get(tp)
                if part is None:
                    part = self._parts[tp] = Partition(tp)
                new.append(part)
            await asyncio.gather(*(self._recover(part, reinit=True) for part in new))
        log.info("partitions assigned: %s (ready: %s)", sorted(tp.partition for tp in assigned),
                 sorted(p.tp.partition for p in self._parts.values() if p.ready))

    async def _release(self, part: Partition) -> None:
        await self._drain_publishing([part])
        part.ready = False
        part.cache.clear()
        if part.publisher is not None:
            await part.publisher.stop()
            part.publisher = None

    # --- recovery ----------------------------------------------------------------------------------

    def _recovery_due(self) -> bool:
        now = time.monotonic()
        return any(not p.ready and p.retry_at <= now for p in self._parts.values())

    async def _recover_due(self) -> None:
        """Recover the partitions waiting for it (call with the lock held, nothing pending)."""
        now = time.monotonic()
        due = [p for p in self._parts.values() if not p.ready and p.retry_at <= now]
        if due:
            await asyncio.gather(*(self._recover(p, reinit=p.publisher is None) for p in due))

    async def _recover(self, part: Partition, reinit: bool) -> bool:
        """Bring a partition back in line with the store (see the module doc). Idempotent, and
        always safe: whatever happened before, afterwards the topic holds every stored event of
        this partition exactly once and the consumer continues right after the stored ones.
        Returns whether the partition is ready; if not, it stays paused and is retried later."""
        await self._drain_publishing([part])
        tp = part.tp
        part.ready = False
        part.cache.clear()
        try:
            self.consumer.pause(tp)
        except Exception:  # noqa: BLE001 - not assigned any more: the revoke drops it
            return False
        o = self.options
        try:
            if reinit or part.publisher is None or not part.publisher.usable:
                if part.publisher is not None:
                    await part.publisher.stop()
                part.publisher = PartitionPublisher(self.settings, tp, self.output_topic, self.group_id)
                await asyncio.wait_for(part.publisher.start(), o.kafka_timeout_s)
            async with self.pool.acquire() as conn:
                pos = await store.claim_partition(conn, self.group_id, tp.topic, tp.partition)
            committed = await asyncio.wait_for(self.consumer.committed(tp), o.kafka_timeout_s)
            published = committed if committed is not None else (pos.published_hint or 0)
            stored = pos.next_offset
            outputs = []
            if published < stored:
                async with self.pool.acquire() as conn:
                    rows = await store.stored_events_between(conn, tp.topic, tp.partition, published, stored)
                encode = self.out_codec.encode
                outputs = [(lead_key(r["lead_id"]), encode(lifecycle_record_from_row(r))) for r in rows]
            elif published > stored:
                # The group says more was published than is stored: the store lost data (restored
                # from a backup?). The store is the truth: reprocess from it.
                log.error("partition %d: group offset %d is beyond the stored offset %d; reprocessing from %d",
                          tp.partition, published, stored, stored)
                self.metrics.error("internal")
            # Always one transaction, even an empty one: it proves this producer still owns the
            # partition (a zombie's is fenced here) before any of its records is processed.
            await asyncio.wait_for(part.publisher.publish(outputs, stored), o.kafka_timeout_s)
            self.transactions += 1
            self.metrics.transactions.inc()
            if outputs:
                log.info("partition %d: re-published %d stored events of offsets [%d, %d)",
                         tp.partition, len(outputs), published, stored)
            published = stored
            part.next_offset = stored
            part.published = published
            self.consumer.seek(tp, stored)
            self.consumer.resume(tp)
            part.ready = True
            return True
        except Exception as exc:  # noqa: BLE001 - any failure: stay paused, retry later
            if isinstance(exc, FENCED_ERRORS):
                # A newer producer owns this partition: another instance took it. Stop touching it;
                # the rebalance that must follow revokes it (or we re-claim it after a long pause).
                log.warning("partition %d: fenced by another instance (%r); pausing it", tp.partition, exc)
                if part.publisher is not None:
                    await part.publisher.stop()
                    part.publisher = None
                part.retry_at = time.monotonic() + o.fenced_backoff_s
                self.metrics.error("kafka")
            else:
                log.warning("partition %d: recovery failed (%r); retrying in %.1fs", tp.partition, exc, o.retry_backoff_s)
                part.retry_at = time.monotonic() + o.retry_backoff_s
                self.metrics.error("postgres" if isinstance(exc, (asyncpg.PostgresError, OSError)) else "kafka")
            return False

    # --- rounds ------------------------------------------------------------------------------------
    #
    # A round is one getmany result. It is planned (decoded, leads loaded, applied) while the
    # previous round is being written to Postgres, then it waits for that write, whose round is
    # handed to the partitions' publishing loops, and its own write starts. So the CPU work of round
    # N+1 overlaps the Postgres write of round N and the Kafka transactions of the rounds before
    # (which never hold up a write, see _publish_round). Planning N+1 before N is committed
    # is speculative: the caches and stored positions already hold N's outcome, and the duplicate
    # check adds N's event ids to what the store says. If N's write fails, N+1 is dropped and every
    # partition of both is recovered from the store (which knows whether N committed).

    async def _process(self, batches) -> None:
        round_ = await self._plan(batches) if batches else None
        ok = await self._finish_pending()
        if round_ is None:
            return
        if not ok or any(not p.ready for p in round_.parts.values()):
            self._mark_for_recovery(round_.parts.values())
            return
        if not self.options.pipeline:
            self._pending = round_
            round_.write = asyncio.create_task(self._write(round_))
            await self._finish_pending()
            return
        round_.write = asyncio.create_task(self._write(round_))
        self._pending = round_

    async def _plan(self, batches) -> "_Round | None":
        started = time.perf_counter()
        decode, decoder = decode_partition, self.decoder
        work: list[tuple[Partition, list]] = []
        total = 0
        for tp, records in batches.items():
            total += len(records)
            self.metrics.records.labels("lifecycle", tp.topic).inc(len(records))
            part = self._parts.get(tp)
            if part is None or not part.ready:
                continue   # its position is reset by the recovery that makes it ready
            start = part.next_offset
            if records[0].offset < start:
                records = [r for r in records if r.offset >= start]
                if not records:
                    continue
            work.append((part, decode(decoder, records)))
        self.metrics.batch_size.observe(total)
        t0 = time.perf_counter()
        self.phases["decode"] += t0 - started
        if not work:
            return None
        known: dict[str, LeadEntry | None] = {}
        missing: list[str] = []
        event_ids: list[str] = []
        for part, decoded in work:
            cache = part.cache
            for d in decoded:
                event = d.event
                if event is None:
                    continue
                event_ids.append(event.event_id)
                lead_id = event.lead_id
                if lead_id in known:
                    continue
                entry = cache.get(lead_id)
                if entry is None:
                    missing.append(lead_id)
                else:
                    cache.move_to_end(lead_id)
                known[lead_id] = entry
        async with self.pool.acquire() as c1, self.pool.acquire() as c2:
            loaded, seen = await asyncio.gather(store.load_leads(c1, missing), store.stored_event_ids(c2, event_ids))
        known.update(loaded)
        pending = self._pending
        if pending is not None:   # not committed yet: the store cannot know its event ids
            seen |= {row[2] for row in pending.plan.event_rows}
        t1 = time.perf_counter()
        self.phases["query"] += t1 - t0
        plan = plan_round(
            self.input_topic,
            [PartitionInput(part.tp.partition, part.next_offset, decoded) for part, decoded in work],
            known, seen, self.encoder,
        )
        parts = {part.tp.partition: part for part, _ in work}
        # Speculative: the next round is planned on this one's outcome (no eviction until commit).
        for lead_id, (p, entry) in plan.leads.items():
            cache = parts[p].cache
            cache[lead_id] = entry
            cache.move_to_end(lead_id)
        for pp in plan.parts:
            parts[pp.partition].next_offset = pp.next_offset
        self.phases["plan"] += time.perf_counter() - t1
        return _Round(plan, parts, started)

    async def _write(self, round_: "_Round") -> None:
        """Store the round; once committed, publish it right away (not when the next round is
        planned: that would add a round's planning to every record's latency)."""
        t = time.perf_counter()
        async with self.pool.acquire() as conn:
            await store.write_round(conn, self.group_id, round_.plan,
                                    {p: part.published for p, part in round_.parts.items()})
        self.phases["write"] += time.perf_counter() - t
        plan = round_.plan
        self.events_stored += len(plan.event_rows)
        self.metrics.count_round(plan)
        for topic, partition, offset, _key, _value, error in plan.unreadable_rows:
            # Where and why, never the bytes (they may hold personal data): the record is in the table.
            log.warning("%s[%d]@%d is not an event envelope (%s): kept in unreadable_records",
                        topic, partition, offset, error)
        self.rounds += 1
        await self._publish_round(plan, round_.parts, round_.started)

    async def _finish_pending(self) -> bool:
        """Wait for the round being written (and its publishing to be under way). Returns False
        if the write failed (its partitions are then marked for recovery)."""
        round_ = self._pending
        if round_ is None:
            return True
        self._pending = None
        t = time.perf_counter()
        try:
            await round_.write
        except Exception as exc:  # noqa: BLE001 - outcome unknown: the store will tell
            if isinstance(exc, store.OffsetConflict):
                log.warning("stored offsets of partitions %s moved under this instance (another instance "
                            "stored them); recovering", sorted(exc.partitions))
                self.metrics.error("internal")
            else:
                log.warning("storing a round failed (%r); recovering its partitions from the store", exc)
                self.metrics.error("postgres" if isinstance(exc, (asyncpg.PostgresError, OSError)) else "internal")
            self._mark_for_recovery(round_.parts.values())
            return False
        finally:
            self.phases["write_wait"] += time.perf_counter() - t
        size = self.options.cache_size
        for part in round_.parts.values():
            cache = part.cache
            while len(cache) > size:
                cache.popitem(last=False)
        return True

    def _mark_for_recovery(self, parts) -> None:
        now = time.monotonic()
        for part in parts:
            part.ready = False
            part.cache.clear()
            part.retry_at = now
            try:
                self.consumer.pause(part.tp)
            except Exception:  # noqa: BLE001 - not assigned any more
                pass

    # --- publishing ----------------------------------------------------------------------------------

    async def _publish_round(self, plan: RoundPlan, parts: dict[int, Partition], started: float) -> None:
        """Hand each partition's part of a stored round to that partition's publishing loop. One
        transaction at a time per partition, in order; the rounds stored while one is in flight
        go out together in the next. So the write of the next round never waits for Kafka, and
        when transactions are slower than rounds (a busy broker: each costs it ≈ 3 ms of CPU,
        docs/performance.md) fewer and larger ones are made instead of a queue of small ones."""
        t = time.perf_counter()
        waits = []
        for pp in plan.parts:
            part = parts[pp.partition]
            if not part.ready or self._parts.get(part.tp) is not part:
                continue   # recovery re-publishes from the store
            part.outbox.extend(pp.outputs)
            part.outbox_offset = pp.next_offset
            part.outbox_started.append(started)
            if part.publishing is None or part.publishing.done():
                part.publishing = asyncio.create_task(self._publish_loop(part))
            if len(part.outbox) > self.options.max_records * 4 or not self.options.pipeline:
                waits.append(part.publishing)   # Kafka is far behind (or no pipelining): wait
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        self.phases["publish_wait"] += time.perf_counter() - t

    async def _publish_loop(self, part: Partition) -> None:
        """Publish the partition's outbox, one transaction per turn, until it is empty."""
        while part.outbox_offset is not None:
            outputs, next_offset, started = part.outbox, part.outbox_offset, part.outbox_started
            part.drop_outbox()
            ok = await self._publish(part, outputs, next_offset)
            now = time.perf_counter()
            for t in started:
                self.metrics.batch_duration.observe(now - t)
            if not ok:
                part.drop_outbox()   # the partition is recovered from the store
                return

    async def _publish(self, part: Partition, outputs, next_offset: int) -> bool:
        try:
            await asyncio.wait_for(part.publisher.publish(outputs, next_offset), self.options.kafka_timeout_s)
            part.published = next_offset
            self.transactions += 1
            self.metrics.transactions.inc()
            return True
        except Exception as exc:  # noqa: BLE001 - stored but not published: recovery re-publishes it
            fenced = isinstance(exc, FENCED_ERRORS)
            log.warning("partition %d: publishing failed (%r)%s", part.tp.partition, exc,
                        "; fenced" if fenced else "")
            self.metrics.error("publish")
            part.ready = False
            part.cache.clear()
            # Fenced: another instance owns the partition now; a new producer of ours would fence
            # it in turn, so wait for the rebalance that revokes it here (or re-claim it much later).
            part.retry_at = time.monotonic() + (self.options.fenced_backoff_s if fenced else 0)
            try:
                self.consumer.pause(part.tp)
            except Exception:  # noqa: BLE001
                pass
            return False

    async def _drain_publishing(self, parts) -> None:
        """Wait until these partitions' outboxes are published (or failed and dropped)."""
        tasks = [p.publishing for p in parts if p.publishing is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for p in parts:
            p.publishing = None
            p.drop_outbox()   # only left if publishing failed: recovery re-publishes from the store

    # --- metrics -----------------------------------------------------------------------------------------

    def _update_lag(self) -> None:
        offsets = {p.tp: p.published for p in self._parts.values() if p.ready and p.published is not None}
        if offsets:
            try:
                self.metrics.lag.update(self.consumer, offsets)
            except Exception:  # noqa: BLE001 - a partition revoked meanwhile
                pass

    async def _leads_gauge_loop(self) -> None:
        while True:
            try:
                async with self.pool.acquire() as conn:
                    self.metrics.set_leads(await store.leads_per_stage(conn))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("refreshing the leads gauge failed: %r", exc)
                self.metrics.error("postgres")
            await asyncio.sleep(self.options.leads_gauge_interval_s)
