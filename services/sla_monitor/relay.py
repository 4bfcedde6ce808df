"""The outbox relay: rows of `sla_emissions`, in id order, to leadflow.sla, exactly once.

Each publish is ONE Kafka transaction holding a run of outbox rows AND the relay's position (the
id after the last row) as the offset of a dedicated consumer group (`send_offsets_to_transaction`
on partition 0 of leadflow.sla, a group no consumer joins). Records and position commit or abort
together, so the position read back after any crash is exactly "published up to here":

- start (and after any error): a new transactional producer with the fixed transactional id
  fences an older relay (a zombie can commit nothing more) and makes the broker finish the
  transaction it may have left open; only then is the position read, so it is stable.
- the position comes from the group's committed offset; `sla_relay_position.published_hint`, a
  lagging copy written after each commit, is used when that offset is gone (an idle group's
  offsets expire after `offsets.retention.minutes`) and never moves the position backwards.

The outbox is written by one instance at a time, in id order (docs/sla_monitor.md), so an id the
relay has passed never commits later.

Rows from memory: the service hands the relay the rows each transaction inserted, right after the
commit (`offer`), and the relay publishes those instead of reading them back. That is only done
above the outbox's last id when the relay (re)started (`_db_floor`): every row above it was
committed by this process, whose commits all offer their rows, in id order. Anything else (rows of
an earlier instance, below the floor; a retried commit whose first attempt had committed rows this
process never saw as committed, `resync`; a queue that grew past `MAX_QUEUED` while Kafka was away)
goes through the outbox table as before.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Awaitable, Callable, Sequence

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from services.common.config import Settings
from services.common.kafka import make_producer
from services.sla_monitor import store

log = logging.getLogger("leadflow.sla_monitor.relay")

FENCED_ERRORS = (ProducerFenced, InvalidProducerEpoch)
OUTBOX_ID_HEADER = "leadflow-outbox-id"
MAX_QUEUED = 100_000   # rows kept in memory for the relay; beyond that it reads the outbox again

Row = tuple[int, bytes, bytes]   # (outbox id, record key, record value)


def relay_ids(settings: Settings) -> tuple[str, str]:
    """(transactional id, position group) of the relay of these topics."""
    prefix = settings.topics.prefix.rstrip(".") or "leadflow"
    return f"{prefix}-sla-relay", f"{prefix}-sla-relay-position"


class RelayFenced(RuntimeError):
    """A newer relay took over the transactional id."""


class OutboxRelay:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, *, batch: int = 1000, poll_s: float = 1.0,
                 on_error: Callable[[str], None] | None = None,
                 on_published: Callable[[int], Awaitable[None] | None] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.batch = batch
        self.poll_s = poll_s
        self.topic = settings.topics.sla
        self.position_tp = TopicPartition(self.topic, 0)
        self.transactional_id, self.group_id = relay_ids(settings)
        self.position = 0          # published up to and including this outbox id
        self.published = 0         # records published by this relay
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stop = False
        self._queue: deque[Row] = deque()   # rows committed by this process, in id order
        self._db_floor: int | None = None   # rows up to this id are read from the outbox; None: not known
        self._on_error = on_error or (lambda kind: None)

    def wake(self) -> None:
        """New rows are in the outbox."""
        self._wake.set()

    def offer(self, rows: Sequence[Row]) -> None:
        """The rows one transaction of this process inserted, just committed (in id order); wakes
        the relay."""
        queue = self._queue
        if rows:
            if queue and rows[0][0] <= queue[-1][0]:  # out of order: cannot be, but never guess
                self.resync()
            elif len(queue) + len(rows) > MAX_QUEUED:
                self.resync()  # Kafka is away for long: the outbox table holds them anyway
            else:
                queue.extend(rows)
        self._wake.set()

    def resync(self) -> None:
        """Rows may be in the outbox that were not offered: read the table up to its last id again."""
        self._queue.clear()
        self._db_floor = None

    async def _open(self) -> None:
        producer = make_producer(self.settings, transactional_id=self.transactional_id, linger_ms=2)
        await producer.start()  # InitProducerId: fences older relays, finishes their open transaction
        self._producer = producer
        self.position = await self._read_position()
        log.info("relay %s: publishing outbox rows after id %d", self.transactional_id, self.position)

    async def _read_position(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap, client_id="leadflow-sla-relay")
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.group_id, partitions=[self.position_tp])
        finally:
            await admin.close()
        meta = offsets.get(self.position_tp)
        kafka_next = meta.offset if meta is not None and meta.offset is not None and meta.offset >= 0 else 0
        async with self.pool.acquire() as conn:
            hint = await store.published_hint(conn)
            last_id = await conn.fetchval("SELECT COALESCE(max(id), 0) FROM sla_emissions")
        position = kafka_next - 1
        if position > last_id:
            # Outbox rows are never deleted, so a position past the last id means this outbox is
            # not the one the position was committed for (the database was reset, the topics
            # kept): publishing from the hint re-sends nothing this outbox already sent.
            log.warning("relay position %d is past the outbox's last id %d (a reset database?): "
                        "publishing after id %d", position, last_id, hint)
            return hint
        # The group offset is the next id to publish; the hint lags it, so the larger one is right.
        return max(position, hint, 0)

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 15)
            except Exception:  # noqa: BLE001 - closing a broken producer; a new one fences it anyway
                log.warning("relay: stopping the producer failed", exc_info=True)

    async def publish_pending(self) -> int:
        """Publish every outbox row after the position, in transactions of up to `batch` rows: from
        the table up to `_db_floor`, then the rows offered from memory. Returns the rows published."""
        if self._producer is None:
            await self._open()
        total = 0
        queue = self._queue
        while True:
            if self._db_floor is None:
                # Every row committed after this read is offered; an earlier one is at most this id.
                async with self.pool.acquire() as conn:
                    floor = await store.last_outbox_id(conn)
                self._db_floor = floor
                while queue and queue[0][0] <= floor:
                    queue.popleft()
            if self.position < self._db_floor:
                async with self.pool.acquire() as conn:
                    records = await store.outbox_after(conn, self.position, self.batch)
                if records:
                    rows: list[Row] = [(r["id"], r["record_key"], r["record_value"]) for r in records]
                    await self._publish(rows)
                    total += len(rows)
                    continue
                self._db_floor = self.position  # nothing after the position: the floor is passed
            while queue and queue[0][0] <= self.position:
                queue.popleft()  # published already (read from the table)
            if not queue:
                return total
            n = min(len(queue), self.batch)
            rows = [queue[i] for i in range(n)]
            await self._publish(rows)  # leaves them queued if it fails: the retry publishes them
            for _ in range(n):
                queue.popleft()
            total += n

    async def _publish(self, rows: Sequence[Row]) -> None:
        producer = self._producer
        assert producer is not None
        last = rows[-1][0]
        topic = self.topic
        await producer.begin_transaction()
        try:
            futures = []
            for row_id, key, value in rows:
                futures.append(await producer.send(
                    topic, key=key, value=value, headers=[(OUTBOX_ID_HEADER, str(row_id).encode())]))
            await producer.send_offsets_to_transaction({self.position_tp: last + 1}, self.group_id)
            await asyncio.gather(*futures)
            await producer.commit_transaction()
        except FENCED_ERRORS as exc:
            raise RelayFenced(str(exc)) from exc
        except BaseException:
            # Whatever happened, the next attempt starts with a new producer and reads the position
            # back from Kafka: a transaction whose outcome is unknown is settled by then.
            await self._close_producer()
            raise
        self.position = last
        self.published += len(rows)
        try:
            async with self.pool.acquire() as conn:
                await store.set_published_hint(conn, last)
        except (asyncpg.PostgresError, OSError) as exc:  # only the lagging hint: the next commit fixes it
            log.warning("relay: could not store the published hint: %s", exc)

    async def run(self) -> None:
        """Publish until stopped; on an error wait and start over with a new producer. Raises
        RelayFenced when another relay owns the transactional id."""
        backoff = 0.5
        while not self._stop:
            # Cleared before publishing, not after: a wake() that comes while publishing (a commit
            # meanwhile) must start the next round at once instead of waiting for poll_s.
            self._wake.clear()
            try:
                await self.publish_pending()
                backoff = 0.5
            except RelayFenced:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka or Postgres trouble: retry, never skip
                kind = "postgres" if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError)) else "publish"
                self._on_error(kind)
                log.warning("relay: publishing failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                await self._close_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop = True
        self._wake.set()

    async def close(self) -> None:
        await self._close_producer()
