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

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Coroutine, Generator, Mapping, cast

import faust
from faust.sensors import Monitor
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

if TYPE_CHECKING:
    from services.sla_monitor.service import SlaMonitor

log = logging.getLogger("leadflow.sla_monitor.faust")


# --- faust's per-message path, without the per-message tasks ----------------------------------------

# The faust-streaming release whose Consumer._drain_messages is copied below; with any other one the
# consumer keeps faust's own loop.
DRAIN_COPIED_FROM = "0.15.3"


class _Continue:
    """Awaiting this continues a coroutine that already ran its first step and yielded `first` (a
    future it waits for, or None for a bare yield): each value it yields goes up to the task that
    awaits this, and what the task sends or throws back goes down into it, exactly as if the task
    had run the coroutine from its start (this is what `yield from` does)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine, first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # thrown in by the task (e.g. its cancellation): pass it on
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                value = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _finish(coro: Coroutine, first: Any) -> Any:
    return await _Continue(coro, first)


def run_or_wait(coro: Coroutine) -> "Coroutine | None":
    """Run `coro`'s first step now. None if that finished it (it never had to wait); else a
    coroutine that continues it, to be awaited (or wrapped in a task) like `coro` itself."""
    try:
        first = coro.send(None)
    except StopIteration:
        return None
    return _finish(coro, first)


class RawSchema(faust.Schema):
    """Key and value as the raw bytes of the record, without faust's serializer registry (the
    `raw` codec with bytes types gives the same bytes, through a registry look-up, a codec call and
    a payload check per field and record)."""

    def compile(self, app: Any, *, on_key_decode_error: Any = None, on_value_decode_error: Any = None,
                default_propagate: bool = False) -> Callable:
        create_event = app.create_event

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


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

    _buffer_dropped: asyncio.Event | None = None

    def on_buffer_drop(self, tp: TP) -> None:
        super().on_buffer_drop(tp)
        if self._buffer_dropped is not None:
            self._buffer_dropped.set()

    async def _wait_next_records(self, timeout: float) -> Any:
        """faust's, except while the stream's buffer is full: faust then pauses the partitions of
        the messages it delivers (`on_buffer_full`) and goes on fetching the others, or sleeps a
        second when none is left; a fetch of partitions that have nothing new waits its whole
        timeout (one second) and does not notice the others resuming. With the agent taking a
        1,000-record batch in tens of milliseconds, the monitor sat idle for most of those seconds
        whenever a backlog filled the buffer. So while any partition is paused for a full buffer
        this waits for the buffer to drop (`on_buffer_drop`, which resumes them all) or one second,
        and then fetches. (The buffer still holds 40 % of its size when it drops.)"""
        if self._buffer_dropped is None:
            self._buffer_dropped = asyncio.Event()
        dropped = self._buffer_dropped
        dropped.clear()  # before the check: a drop after it sets the event again
        if self.flow_active and not self.app.client_only and getattr(self, "_buffered_partitions", None):
            try:
                await asyncio.wait_for(dropped.wait(), 1.0)
            except asyncio.TimeoutError:
                pass  # still full after a second: fetch what faust would fetch
        return await super()._wait_next_records(timeout)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by faust's Fetcher
        """faust's own loop (faust/transport/consumer.py, 0.15.3), with one change: faust hands each
        message to the conductor with `wait_first(callback(message), suspend_flow.wait())`, four
        tasks and an asyncio.wait per message, a third of the process's CPU at 5,000 records/s.
        Here the callback's first step runs at once (`run_or_wait`); it nearly always finishes
        there (the stream's queue has room), and when it has to wait (queue full, flow control,
        the callback lock) the rest of it goes to exactly that wait_first, so suspending the flow
        still abandons it as before. While the flow is suspended, faust's path is taken as is."""
        if faust.__version__ != DRAIN_COPIED_FROM:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        suspended = self.suspend_flow.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            if suspended():
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            else:
                                rest = run_or_wait(callback(message))
                                if rest is not None:
                                    await self.wait_first(rest, self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class StoredOffsetsTransport(faust_aiokafka.Transport):
    Consumer = StoredOffsetsConsumer


class QuietMonitor(Monitor):
    """faust's Monitor sensor without its per-message and per-event statistics (four calls per
    record, kept for faust's web views and its own sensors, none of which this app serves: its
    metrics are its own, docs/metrics.md). Everything else (commits, rebalances, end offsets) as is."""

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        return None


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
        Monitor=QuietMonitor,
    )
    app.sla_service = service
    return app
