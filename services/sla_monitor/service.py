"""The SLA monitor service: leadflow.lifecycle in, the SLA engine in the middle, its state and an
outbox in Postgres, leadflow.sla and Prometheus out. Design and guarantees: docs/sla_monitor.md.

- A faust agent reads leadflow.lifecycle (read_committed, raw bytes) in batches (`take_events`);
  each batch is decoded, observed by the engine, and committed to Postgres in ONE transaction
  with the changed clocks and windows, the engine state, the emissions (outbox) and the input
  offsets. The consumer starts every partition at the stored offset, and records below it are
  skipped: each input record changes the state exactly once.
- A faust timer advances the engine to the wall clock every `timer_interval_s` and commits what
  that decided (breaches, window closes) the same way: a breach fires with no further event, and
  is committed once, with the clock's new outcome, so a restart never fires it again.
- The relay publishes the outbox to leadflow.sla exactly once (relay.py).
- One instance writes (a Postgres advisory lock; a second instance waits as a standby), and every
  write checks the writer's epoch, so a stale instance cannot commit.

The engine is single-writer: every observe/advance and its commit run under one asyncio lock.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import asyncpg
from prometheus_client import CollectorRegistry

from services.common.avro_codec import AvroCodec, AvroCodecError
from services.common.config import Settings, env_flag, env_number
from services.common.kafka import group_id_for, lead_key
from services.common.metrics import serve_metrics
from services.common.timefmt import parse_rfc3339
from services.sla_monitor import store
from services.sla_monitor.domain import Emission, Policy, SlaEngine
from services.sla_monitor.domain.clocks import WINDOW_REJUDGED, window_key
from services.sla_monitor.metrics import SlaMetrics, WindowView
from services.sla_monitor.records import (
    clock_id,
    emission_key,
    outcome_record,
    transition_from_avro,
    window_id,
)
from services.sla_monitor.relay import OutboxRelay, RelayFenced
from services.sla_monitor.wire import ClockOutcomeEncoder, LifecycleReader

log = logging.getLogger("leadflow.sla_monitor")

Record = tuple[int, int, "bytes | None", "bytes | None"]  # (partition, offset, key, value)


def default_group_id(settings: Settings) -> str:
    return group_id_for(settings, "sla-monitor")


@dataclass(frozen=True)
class SlaOptions:
    """Tuning of the service (environment LEADFLOW_SLA_*, read once at start-up)."""

    group_id: str | None = None          # None: default_group_id(settings)
    batch_max: int = 5000                # records per batch (stream.take_events)
    batch_within_s: float = 0.05         # ... or what arrived within this time
    timer_interval_s: float = 1.0        # how often the timer advances the engine to the wall clock
    gauge_interval_s: float = 5.0        # open / at-risk / volume gauges, consumer lag
    catchup_grace_s: float = 30.0        # first timer tick waits for the backlog at most this long
    relay_batch: int = 1000              # outbox rows per Kafka transaction
    relay_poll_s: float = 1.0
    db_retry_s: float = 30.0             # a failing commit is retried this long, then the service exits
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 3.0
    lock_wait: bool = True               # wait for the writer lock (standby) or fail at once
    metrics_host: str = "127.0.0.1"     # LEADFLOW_SLA_METRICS_HOST; 0.0.0.0 exposes /metrics
    serve_metrics: bool = True


def load_options(env: Mapping[str, str] | None = None) -> SlaOptions:
    env = os.environ if env is None else env
    d = SlaOptions()

    def num(name: str, default, cast=int):
        return env_number(env, f"LEADFLOW_SLA_{name}", default, cast)

    return SlaOptions(
        group_id=env.get("LEADFLOW_SLA_GROUP_ID") or None,
        batch_max=num("BATCH_MAX", d.batch_max),
        batch_within_s=num("BATCH_WITHIN_S", d.batch_within_s, float),
        timer_interval_s=num("TIMER_INTERVAL_S", d.timer_interval_s, float),
        gauge_interval_s=num("GAUGE_INTERVAL_S", d.gauge_interval_s, float),
        catchup_grace_s=num("CATCHUP_GRACE_S", d.catchup_grace_s, float),
        relay_batch=num("RELAY_BATCH", d.relay_batch),
        relay_poll_s=num("RELAY_POLL_S", d.relay_poll_s, float),
        db_retry_s=num("DB_RETRY_S", d.db_retry_s, float),
        session_timeout_s=num("SESSION_TIMEOUT_S", d.session_timeout_s, float),
        heartbeat_interval_s=num("HEARTBEAT_INTERVAL_S", d.heartbeat_interval_s, float),
        lock_wait=env_flag(env, "LEADFLOW_SLA_LOCK_WAIT", True),
        metrics_host=env.get("LEADFLOW_SLA_METRICS_HOST") or d.metrics_host,
    )


class FatalError(RuntimeError):
    """The service cannot go on without risking a wrong state: it stops (exit code 1) and the next
    start resumes from what was committed."""


class StandbyRefused(RuntimeError):
    """Another instance is the writer and this one was told not to wait (lock_wait off)."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def coalesce_rejudged(emissions: list[Emission]) -> list[Emission]:
    """A batch of late leads re-judges a window once per lead: of its `window_rejudged`
    emissions only the last of the batch goes out (the later ones carry every count before them).
    Corrections and first judgements all go out, each counted."""
    last: dict[tuple, int] = {}
    for index, emission in enumerate(emissions):
        if emission.window is not None:
            last[emission.window.key] = index
    if len(last) == sum(1 for e in emissions if e.window is not None):
        return emissions  # at most one emission per window: the usual case
    return [e for i, e in enumerate(emissions)
            if e.kind != WINDOW_REJUDGED or last[e.window.key] == i]  # type: ignore[union-attr]


def _window_view(snapshot: Mapping[str, Any]) -> WindowView:
    return WindowView(snapshot["sla"], snapshot["owner"], parse_rfc3339(snapshot["window_start"]),
                      parse_rfc3339(snapshot["window_end"]), len(snapshot["leads"]), snapshot["target"])


def _window_id_of(snapshot: Mapping[str, Any]) -> str:
    """The id of a window snapshot (its key's, without building the window)."""
    return window_id(window_key(snapshot["sla"], snapshot["owner"], parse_rfc3339(snapshot["window_start"]),
                                snapshot.get("checkpoint")))


class SlaMonitor:
    def __init__(self, settings: Settings, policy: Policy, options: SlaOptions | None = None,
                 registry: CollectorRegistry | None = None, now: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.policy = policy
        self.options = options or SlaOptions()
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = SlaMetrics(self.registry, policy)
        self.now = now or _utc_now
        self.input_topic = settings.topics.lifecycle
        self.group_id = self.options.group_id or default_group_id(settings)
        self.codec_in = AvroCodec("lifecycle_record")
        self.reader = LifecycleReader(self.codec_in)   # the fast path; None -> the codec decodes
        self.codec_out = AvroCodec("sla_outcome")
        self.outcome_encoder = ClockOutcomeEncoder(self.codec_out)   # clock emissions; None -> the codec
        self.engine: SlaEngine = SlaEngine(policy, keep_history=False)
        self.offsets: dict[int, int] = {}          # input partition -> next offset (as committed)
        self.windows: dict[str, WindowView] = {}   # windows being counted, for the volume gauges
        self.assigned: set[int] = set()
        self.epoch: int | None = None
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.app = None
        self.fatal: BaseException | None = None
        self.stopping = False
        self.timer_open = False
        # progress, for tests, logs and the benchmark
        self.records_applied = 0
        self.records_skipped = 0
        self.batches = 0
        self.emissions_committed = 0
        self.ticks = 0
        # process CPU seconds at the start of the first batch and at the end of the latest one
        self.cpu_first: float | None = None
        self.cpu_last: float | None = None
        self._lock = asyncio.Lock()     # serializes observe/advance and their commits
        self._done = asyncio.Event()
        self._lock_conn: asyncpg.Connection | None = None
        self._metrics_runner = None
        self._tasks: list[asyncio.Task] = []
        self._ready_at: float | None = None
        self._caught_up_checks = 0

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        s, o = self.settings, self.options
        applied = await store.prepare_store(s)
        if applied:
            log.info("sla_monitor migrations applied: %s", ", ".join(applied))
        conn = await store.connect_store(s)
        self._lock_conn = conn
        key = store.lock_key(s.postgres_schema)
        if not await store.try_lock(conn, key):
            if not o.lock_wait:
                raise StandbyRefused("another sla_monitor instance is the writer of this schema")
            log.info("another sla_monitor instance is the writer: waiting as a standby")
            await store.wait_lock(conn, key)
        self.epoch = await store.claim(conn, s.instance_id)
        stored = await store.load_state(conn, self.input_topic, lead_attributes=bool(self.policy.lead_attributes))
        if stored.snapshot is not None:
            self.engine = SlaEngine.restore(self.policy, stored.snapshot, keep_history=False)
            if stored.policy_version != self.policy.version:
                log.info("policy %s replaces %s: open clocks keep the due times they started with",
                         self.policy.version, stored.policy_version)
        self.offsets = dict(stored.offsets)
        for snap in stored.windows:
            if snap["outcome"] is None and not snap.get("checkpoint"):  # the gauges show periods
                self.windows[_window_id_of(snap)] = _window_view(snap)
        log.info("sla_monitor state: %d clocks awaiting a stop, %d windows, offsets %s, epoch %d, policy %s",
                 sum(1 for _ in self.engine.live_clocks()), len(stored.windows), self.offsets or "{}",
                 self.epoch, self.policy.version)
        self.pool = await store.create_store_pool(s)
        self._refresh_gauges()
        if o.serve_metrics:
            self._metrics_runner = await serve_metrics(self.registry, o.metrics_host, s.sla_metrics_port)
        self.relay = OutboxRelay(s, self.pool, batch=o.relay_batch, poll_s=o.relay_poll_s,
                                 on_error=self.metrics.error)
        self._tasks.append(asyncio.create_task(self._run_relay(), name="sla-relay"))
        self._tasks.append(asyncio.create_task(self._gauge_loop(), name="sla-gauges"))
        self.app = self._build_app()
        await self.app.start()

    def _build_app(self):
        from services.sla_monitor.faust_app import RawSchema, build_app

        o = self.options
        datadir = Path(self.settings.home) / "sla_monitor" / "faust"
        datadir.mkdir(parents=True, exist_ok=True)
        app = build_app(self, self.group_id, self.settings.kafka_bootstrap, datadir, batch_max=o.batch_max,
                        session_timeout_s=o.session_timeout_s, heartbeat_interval_s=o.heartbeat_interval_s)
        topic = app.topic(self.input_topic, schema=RawSchema(key_type=bytes, value_type=bytes, key_serializer="raw",
                                                             value_serializer="raw"))
        app.agent(topic, name="sla-monitor-lifecycle")(self._agent)
        app.timer(interval=o.timer_interval_s, name="sla-monitor-timer")(self._timer)
        return app

    async def run(self) -> int:
        """Until stopped (request_stop) or failed; the exit code: 0, or 1 after a fatal error."""
        await self._done.wait()
        return 1 if self.fatal is not None else 0

    @property
    def stop_requested(self) -> bool:
        return self._done.is_set()

    def request_stop(self) -> None:
        self._done.set()

    def fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
            log.error("sla_monitor stops: %s", exc, exc_info=exc if not isinstance(exc, FatalError) else None)
        self.request_stop()

    async def close(self) -> None:
        # Let the batch or tick in hand finish (its transaction commits or not as a whole).
        async with self._lock:
            self.stopping = True
        if self.app is not None:
            try:
                await asyncio.wait_for(self.app.stop(), 30)
            except Exception as exc:  # noqa: BLE001
                log.warning("stopping faust: %s", exc)
        if self.relay is not None:
            await self.relay.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks.clear()
        if self.relay is not None and self.fatal is None and self.pool is not None:
            try:  # what this instance committed goes out now rather than at the next start
                await asyncio.wait_for(self.relay.publish_pending(), 15)
            except Exception as exc:  # noqa: BLE001
                log.warning("relay: final publish failed (%s); the next start publishes it", exc)
        if self.relay is not None:
            await self.relay.close()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
            self._metrics_runner = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self._lock_conn is not None:
            try:
                await self._lock_conn.close()  # releases the writer lock
            except Exception:  # noqa: BLE001 - a closed connection releases its advisory lock anyway
                log.warning("closing the writer-lock connection failed", exc_info=True)
            self._lock_conn = None

    # --- input ------------------------------------------------------------------------------

    def stored_offsets(self) -> dict[int, int]:
        return dict(self.offsets)

    def on_assigned(self, partitions: set[int]) -> None:
        self.assigned = set(partitions)
        if self._ready_at is None:
            self._ready_at = time.monotonic()
        log.info("assigned partitions %s of %s", sorted(partitions), self.input_topic)

    async def _agent(self, stream) -> None:
        async for events in stream.take_events(self.options.batch_max, within=self.options.batch_within_s):
            if self.fatal is not None or self.stopping:
                continue  # not applied: read again from the stored offsets at the next start
            records = [(e.message.partition, e.message.offset, e.message.key, e.message.value) for e in events]
            try:
                await self.process_batch(records)
            except Exception as exc:  # noqa: BLE001 - the state in memory may be ahead of Postgres
                self.fail(exc if isinstance(exc, FatalError) else FatalError(f"batch failed: {exc!r}"))

    async def process_batch(self, records: Iterable[Record]) -> int:
        """Apply one batch of leadflow.lifecycle records and commit it; returns the records applied."""
        async with self._lock:
            if self.stopping or self.fatal is not None:
                return 0
            if self.cpu_first is None:
                self.cpu_first = time.process_time()
            engine = self.engine
            engine.declaring_at = self.now()  # late declarations are marked by the wall clock
            offsets = self.offsets
            commit = store.Commit()
            next_offsets: dict[int, int] = {}
            emissions: list[Emission] = []
            decode = self.codec_in.decode
            read = self.reader.read
            observe = engine.observe
            applied = skipped = 0
            for partition, offset, key, value in records:
                expected = next_offsets.get(partition)
                if expected is None:
                    expected = offsets.get(partition)
                if expected is not None and offset < expected:
                    skipped += 1  # already in the state (a re-delivery after a seek or rebalance)
                    continue
                transition = read(value) if value is not None else None
                if transition is None:  # not the fast path's: the codec decodes or explains
                    try:
                        if value is None:
                            raise AvroCodecError("no value (a tombstone)")
                        transition = transition_from_avro(decode(value))
                    except (AvroCodecError, KeyError, TypeError, ValueError) as exc:
                        self.metrics.error("decode")
                        log.warning("%s[%d]@%d is not a lifecycle record (%s): kept in sla_unreadable_records",
                                    self.input_topic, partition, offset, exc)
                        commit.unreadable.append((partition, offset, key, value, str(exc)[:500]))
                        transition = None
                if transition is not None:
                    found = observe(transition)
                    if found:
                        emissions += found
                next_offsets[partition] = offset + 1
                applied += 1
            self.records_skipped += skipped
            if not next_offsets:
                return 0
            commit.offsets = next_offsets
            await self._commit(commit, emissions)
            offsets.update(next_offsets)
            self.records_applied += applied
            self.batches += 1
            self.metrics.records.labels("sla_monitor", self.input_topic).inc(applied)
            self.cpu_last = time.process_time()
            return applied

    # --- time -------------------------------------------------------------------------------

    async def _timer(self, *_args) -> None:
        try:
            await self.tick()
        except Exception as exc:  # noqa: BLE001
            self.metrics.error("timer")
            self.fail(exc if isinstance(exc, FatalError) else FatalError(f"timer failed: {exc!r}"))

    async def _timer_may_run(self) -> bool:
        """Not before the partitions are assigned and the backlog is read (so a stop waiting in
        the topic is seen before its clock is declared breached), or catchup_grace_s passed."""
        if self.timer_open:
            return True
        if self._ready_at is None or self.app is None:
            return False
        behind = sum(lag.values()) if (lag := await self.lag()) is not None else None
        if behind == 0:
            self._caught_up_checks += 1
            if self._caught_up_checks >= 2:  # twice in a row: nothing was between fetch and stream
                log.info("caught up with %s: the SLA timer runs", self.input_topic)
                self.timer_open = True
        else:
            self._caught_up_checks = 0
            if time.monotonic() - self._ready_at >= self.options.catchup_grace_s:
                log.warning("%s records behind after %.0fs: the SLA timer runs anyway",
                            "unknown" if behind is None else behind, self.options.catchup_grace_s)
                self.timer_open = True
        return self.timer_open

    async def lag(self) -> dict[int, int] | None:
        """Records not yet applied per assigned partition: from the consumer's position to the
        last stable offset, plus records handed to the agent and not yet committed. None while
        not known (no fetch answered yet). Offsets of commit markers and aborted records between
        the position and the end count as records."""
        consumer = self.app.consumer if self.app is not None else None
        if consumer is None or not hasattr(consumer, "stable_end"):
            return None
        from faust.types import TP

        in_flight: dict[int, int] = {}
        for message in list(consumer.unacked):
            if message.tp.topic == self.input_topic:
                in_flight[message.tp.partition] = in_flight.get(message.tp.partition, 0) + 1
        out: dict[int, int] = {}
        for partition in sorted(self.assigned):
            tp = TP(self.input_topic, partition)
            end = consumer.stable_end(tp)
            try:
                position = await asyncio.wait_for(consumer.position(tp), 5)
            except Exception:  # noqa: BLE001 - revoked meanwhile, or the consumer is busy: unknown
                return None
            if end is None or end < 0 or position is None:
                return None
            out[partition] = max(0, end - position) + in_flight.get(partition, 0)
        return out

    async def tick(self) -> int:
        """One timer tick: advance the engine to the wall clock and commit what that decided.
        Returns the emissions committed."""
        if not await self._timer_may_run():
            return 0
        async with self._lock:
            if self.stopping or self.fatal is not None:
                return 0
            now = self.now()
            self.engine.declaring_at = now
            emissions = self.engine.advance(now)
            if emissions or self.engine.has_changes:  # e.g. breaches past their correction window
                await self._commit(store.Commit(), emissions)
            self.ticks += 1
            self.metrics.timer_last_run.set(now.timestamp())
            return len(emissions)

    # --- commit -----------------------------------------------------------------------------

    async def _commit(self, commit: store.Commit, emissions: list[Emission]) -> None:
        """Persist the engine's changes, `emissions` (outbox) and `commit`'s offsets and
        unreadable records in one transaction, retrying for db_retry_s. Called under the lock."""
        changes = self.engine.take_changes()
        commit.clocks = changes.clocks
        commit.windows = changes.windows
        commit.state = changes.state
        commit.lead_attributes = changes.lead_attributes
        commit.policy_version = self.policy.version
        emitted_at = self.now()
        emissions = coalesce_rejudged(emissions)
        encode = self.codec_out.encode
        encode_clock = self.outcome_encoder.encode
        rows = []
        for emission in emissions:
            clock = emission.clock
            if clock is not None:
                cid = clock_id(clock.key)
                value = encode_clock(clock, emission.kind, emission.policy_version, cid, emitted_at, emission.late)
                if value is not None:  # else the codec's path below writes (or explains) it
                    rows.append(store.OutboxRow(
                        cid, emission.kind, clock.sla, clock.lead_id, clock.team, clock.outcome or "open",
                        emitted_at, lead_key(clock.lead_id), value, 0, emission.late))
                    continue
            record = outcome_record(emission, emitted_at)
            rows.append(store.OutboxRow(
                record["clock_id"], emission.kind, record["sla"], record["lead_id"], record["team"],
                record["outcome"], emitted_at, emission_key(emission), encode(record), emission.revision,
                emission.late))
        commit.emissions = rows
        clock_ids = [clock_id((c["sla"], c["lead_id"], c["start_event_id"])) for c in changes.clocks]
        window_ids = [_window_id_of(w) for w in changes.windows]
        written = await self._write(commit, clock_ids, window_ids)
        if written.duplicates:
            # Only after a retried commit whose first attempt did commit: the unique key kept the
            # outbox at one row per (clock, kind), so nothing is emitted twice. The relay reads the
            # table again: the first attempt's rows were never offered to it.
            log.warning("%d emissions were already in the outbox (retried commit)", written.duplicates)
            if self.relay is not None:
                self.relay.resync()
        self.metrics.count_emissions(emissions)
        self.emissions_committed += len(emissions)
        for snap, wid in zip(changes.windows, window_ids):
            if snap["final"] or snap["outcome"] is not None or snap.get("checkpoint"):  # gauges: periods being counted
                self.windows.pop(wid, None)
            else:
                self.windows[wid] = _window_view(snap)
        if written.published and self.relay is not None:
            self.relay.offer(written.published)  # published from memory, not read back

    async def _write(self, commit: store.Commit, clock_ids: list[str], window_ids: list[str]) -> store.Written:
        assert self.pool is not None and self.epoch is not None
        deadline = time.monotonic() + self.options.db_retry_s
        backoff = 0.2
        while True:
            try:
                async with self.pool.acquire() as conn:
                    return await store.write(conn, self.epoch, self.input_topic, commit, clock_ids, window_ids)
            except store.Fenced as exc:
                raise FatalError(str(exc)) from exc
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError) as exc:
                self.metrics.error("postgres")
                if time.monotonic() + backoff > deadline:
                    raise FatalError(f"cannot commit the SLA state to Postgres: {exc!r}") from exc
                log.warning("commit failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # --- background ---------------------------------------------------------------------------

    async def _run_relay(self) -> None:
        assert self.relay is not None
        try:
            await self.relay.run()
        except asyncio.CancelledError:
            raise
        except RelayFenced as exc:
            self.fail(FatalError(f"another relay took over leadflow.sla publishing: {exc}"))
        except Exception as exc:  # noqa: BLE001
            self.metrics.error("publish")
            self.fail(FatalError(f"relay failed: {exc!r}"))

    async def _gauge_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.gauge_interval_s)
            self._refresh_gauges()
            await self._refresh_lag()
            try:
                assert self._lock_conn is not None
                await asyncio.wait_for(self._lock_conn.fetchval("SELECT 1"), 10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the writer lock went with the connection
                self.metrics.error("postgres")
                self.fail(FatalError(f"lost the writer lock's connection: {exc!r}"))
                return

    def _refresh_gauges(self) -> None:
        now = self.now()
        self.metrics.set_clock_gauges(self.engine.live_clocks(), now)
        self.metrics.set_volume_gauges(self.windows.values(), now)

    async def _refresh_lag(self) -> None:
        lag = await self.lag()
        if lag:
            for partition, records in lag.items():
                self.metrics.lag.gauge.labels("sla_monitor", self.input_topic, str(partition)).set(records)


async def run_service(settings: Settings, policy: Policy, options: SlaOptions | None = None,
                      registry: CollectorRegistry | None = None, *, handle_signals: bool = True) -> int:
    import signal

    service = SlaMonitor(settings, policy, options, registry)
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.request_stop)
    code = 0
    try:
        # A standby waits in start() for the writer lock: a stop request must end that wait too.
        starting = asyncio.create_task(service.start())
        stopping = asyncio.create_task(service.run())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            try:
                await starting
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
        elif starting.exception() is not None:
            stopping.cancel()
            raise starting.exception()  # type: ignore[misc]
        code = await stopping
    finally:
        await service.close()
        log.info("sla_monitor stopped: %d records in %d batches, %d emissions, %d timer ticks%s",
                 service.records_applied, service.batches, service.emissions_committed, service.ticks,
                 _cpu_note(service))
        report = os.environ.get("LEADFLOW_BENCH_SLA_REPORT")
        if report:  # for `leadflow bench` and profiling runs (LEADFLOW_BENCH_* reach the services)
            _write_report(service, report)
    return code


def _cpu_note(service: SlaMonitor) -> str:
    """The process CPU per record from the first batch to the last (start-up excluded)."""
    if service.cpu_first is None or service.cpu_last is None or service.records_applied < 2:
        return ""
    cpu = service.cpu_last - service.cpu_first
    return f"; {cpu:.2f} CPU s from the first batch to the last, {cpu / service.records_applied * 1e6:.1f} µs per record"


def _write_report(service: SlaMonitor, path: str) -> None:
    import json

    cpu = None if service.cpu_first is None or service.cpu_last is None else service.cpu_last - service.cpu_first
    doc = {"records": service.records_applied, "skipped": service.records_skipped, "batches": service.batches,
           "emissions": service.emissions_committed, "ticks": service.ticks, "cpu_s_batches": cpu,
           "cpu_s_total": time.process_time(),
           "published": service.relay.published if service.relay is not None else None}
    # Seconds the process's threads ran, and waited on a run queue for a core (Linux schedstat):
    # a wait much larger than the run time means the monitor was starved of CPU, not slow itself.
    run_ns = wait_ns = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as f:
                run, wait, _slices = f.read().split()
            run_ns += int(run)
            wait_ns += int(wait)
        doc["sched_run_s"], doc["sched_wait_s"] = run_ns / 1e9, wait_ns / 1e9
    except (OSError, ValueError) as exc:  # not Linux, or a thread ended meanwhile: left out
        doc["sched_error"] = repr(exc)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
