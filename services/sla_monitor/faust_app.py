"""The faust-streaming side of the SLA monitor: an App whose consumer reads committed records only
and starts every assigned partition at the offset stored in Postgres.

faust's aiokafka driver reads `read_uncommitted` unless `processing_guarantee="exactly_once"`,
which would also make faust run a transactional producer per partition to commit its offsets.
This app produces nothing through faust and keeps its input positions in Postgres, so it keeps
`at_least_once` and sets only the isolation level, in a consumer-thread subclass.

faust seeks assigned partitions to the Kafka group's committed offsets (`seek_to_committed`, after
each rebalance and whenever it resumes the flow). Those offsets are advisory here: faust commits
what was acked, and `take_events` acks a batch when the agent is done with it, also when it
failed. The consumer below seeks to the offsets the state was committed with in Postgres instead
(the beginning of the partition when nothing of it was processed yet), and the service skips any
record below them, so every record is applied to the state exactly once.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

if TYPE_CHECKING:
    from services.sla_monitor.service import SlaMonitor

log = logging.getLogger("leadflow.sla_monitor.faust")


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread with isolation_level read_committed."""

    def _create_worker_consumer(self, transport: Any):
        consumer = super()._create_worker_consumer(transport)
        # AIOKafkaConsumer keeps the constructor argument until start() builds its fetcher.
        consumer._isolation_level = "read_committed"
        return consumer

    def stable_end(self, tp: TP) -> int | None:
        """The last stable offset of a partition (read_committed's end) as last fetched."""
        consumer = self._consumer
        if consumer is None:
            return None
        try:
            return consumer.last_stable_offset(tp)
        except (AssertionError, KeyError, ValueError, AttributeError):  # not assigned (any more)
            return None


class StoredOffsetsConsumer(faust_aiokafka.Consumer):
    """Seeks assigned partitions to the service's stored offsets instead of the group's."""

    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        service: SlaMonitor = self.app.sla_service  # type: ignore[attr-defined]
        assigned = [tp for tp in self.assignment() if tp.topic == service.input_topic]
        stored = service.stored_offsets()
        unknown = [tp for tp in assigned if tp.partition not in stored]
        earliest = await self.earliest_offsets(*unknown) if unknown else {}
        result: dict[TP, int] = dict(committed)
        for tp in assigned:
            offset = stored.get(tp.partition)
            if offset is None:
                offset = earliest.get(tp) or 0
            if committed.get(tp) != offset:
                log.info("seek %s[%d] to stored offset %d (group offset %s)", tp.topic, tp.partition, offset,
                         committed.get(tp))
            await self.seek(tp, offset)
            result[tp] = offset
        service.on_assigned({tp.partition for tp in assigned})
        return result

    def stable_end(self, tp: TP) -> int | None:
        return self._thread.stable_end(tp)


class StoredOffsetsTransport(faust_aiokafka.Transport):
    Consumer = StoredOffsetsConsumer


class SlaFaustApp(faust.App):
    """A faust App on the transport above; `sla_service` is the SlaMonitor it feeds."""

    sla_service: "SlaMonitor"

    def _new_transport(self):
        return StoredOffsetsTransport(self.conf.broker_consumer, self)


def build_app(service: "SlaMonitor", app_id: str, bootstrap: str, datadir: Path, *, batch_max: int,
              session_timeout_s: float, heartbeat_interval_s: float) -> SlaFaustApp:
    """The faust App: no web server, no topic creation, no leader topic, no tables; raw bytes."""
    brokers = [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]
    app = SlaFaustApp(
        app_id,
        broker=brokers,
        autodiscover=False,
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=batch_max,
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=heartbeat_interval_s,
        broker_commit_interval=5.0,
        producer_acks=-1,
        stream_wait_empty=False,
    )
    app.sla_service = service
    return app
