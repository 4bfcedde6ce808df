"""Publishing to leadflow.lifecycle: one transactional producer per INPUT partition.

`transactional_id = leadflow-lifecycle-{input_topic}-{partition}`: whoever starts a producer for a
partition fences every older producer of it (a zombie instance after a rebalance can no longer
commit anything), and aborts the transaction it may have left open.

Each publish is one Kafka transaction holding the lifecycle records of a stored batch AND the
consumer group's offset for that input partition (`send_offsets_to_transaction`): the group offset
therefore means "published up to", exactly as the records on the topic do.
"""
from __future__ import annotations

import asyncio
from typing import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced
from aiokafka.producer.transaction_manager import TransactionState

from services.common.config import Settings
from services.common.kafka import make_producer, send_batched

# Errors that mean "a newer producer owns this transactional id": this instance lost the partition.
FENCED_ERRORS = (ProducerFenced, InvalidProducerEpoch)


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


def transactional_id(input_topic: str, partition: int) -> str:
    return f"leadflow-lifecycle-{input_topic}-{partition}"


class PartitionPublisher:
    """The transactional producer of one input partition."""

    def __init__(self, settings: Settings, input_tp: TopicPartition, output_topic: str, group_id: str) -> None:
        self.input_tp = input_tp
        self.output_topic = output_topic
        self.group_id = group_id
        self.transactional_id = transactional_id(input_tp.topic, input_tp.partition)
        self._producer: AIOKafkaProducer = make_producer(
            settings,
            transactional_id=self.transactional_id,
            linger_ms=0,              # a transaction's records go out as soon as they are built
            retry_backoff_ms=10,      # the next transaction retries CONCURRENT_TRANSACTIONS quickly
        )
        self._partitions: int | None = None
        self.started = False

    async def start(self) -> None:
        """Start the producer and register its transactional id (this fences older producers)."""
        await self._producer.start()
        self.started = True
        # Waits for the producer id: InitProducerId aborts a transaction a previous owner left open.
        await self._producer.client._wait_on_metadata(self.output_topic)
        self._partitions = len(self._producer.client.cluster.partitions_for_topic(self.output_topic))
        await asyncio.shield(self._producer._txn_manager.wait_for_pid())

    @property
    def usable(self) -> bool:
        """Started and between transactions. Not after a fatal error (fenced, ...), nor when a
        transaction's outcome is unknown (a commit that timed out): then only a new producer,
        which makes the broker finish the old transaction first, tells the truth."""
        txn = self._producer._txn_manager
        return self.started and txn is not None and txn.state == TransactionState.READY

    async def publish(self, records: Sequence[tuple[bytes, bytes]], next_offset: int) -> None:
        """One transaction: the records (key, value) in order, and the group offset `next_offset`
        of the input partition. Returns once the transaction is committed; raises otherwise (the
        transaction is then aborted if the producer still can)."""
        producer = self._producer
        await producer.begin_transaction()
        futures: list[asyncio.Future] = []
        try:
            if records:
                await send_batched(producer, self.output_topic, records, self._partitions, futures)
            await producer.send_offsets_to_transaction({self.input_tp: next_offset}, self.group_id)
            if futures:
                await asyncio.gather(*futures)
            await producer.commit_transaction()
        except BaseException:
            for fut in futures:   # their failure is this one; do not leave them unretrieved
                fut.add_done_callback(_retrieve)
            waiter = getattr(producer._txn_manager, "_transaction_waiter", None)
            if waiter is not None:
                waiter.add_done_callback(_retrieve)
            await self._abort_quietly()
            raise

    async def _abort_quietly(self) -> None:
        """Abort the open transaction if the producer can (not after a fatal error such as being
        fenced: then the broker aborts it when the next owner starts its producer)."""
        txn = self._producer._txn_manager
        if txn is None or txn.state not in (TransactionState.IN_TRANSACTION, TransactionState.ABORTABLE_ERROR):
            return
        try:
            await asyncio.wait_for(self._producer.abort_transaction(), 10)
        except Exception:  # noqa: BLE001 - best effort; the caller recovers the partition anyway
            pass

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        try:
            await asyncio.wait_for(self._producer.stop(), 15)
        except Exception:
            pass
