"""Part 6: the whole pipeline under a steady HTTP load, and the memory of each service.

ingest (HTTP) -> leadflow.events -> lifecycle (Postgres) -> leadflow.lifecycle -> SLA monitor
(Postgres, outbox relay) -> leadflow.sla, all three services as their own processes on the
bench's Kafka and PostgreSQL, with a large number of leads already in the event store.

- Load: traffic.py's events posted as JSON arrays to POST /v1/events on a fixed schedule (a
  request every 10 ms carrying rate/100 events). Each event's `occurred_at` is set to the moment
  its request is sent, so the SLA outcome records (which carry the event time that started or
  stopped a clock) lead back to the request.
- Latency: from just before the request is sent to the moment a read_committed consumer in the
  bench process receives the lifecycle record (matched by event id), and the SLA outcome record
  (`started` matched by the starting event's time, `met`/`cancelled`/`corrected` by the stopping
  event's time; timer-driven breaches and window closes have no request and are left out).
- Steady: a rate counts as sustained when the client kept within 5 % of it and, when sending
  stopped, the lifecycle output was less than 2 seconds of traffic behind and the SLA monitor
  had caught up (its committed position still for 1.5 s) within 5 seconds. The ladder starts at
  the issue's 5,000 events/s and halves until a rate is sustained; every rung is reported.
- Memory: psutil RSS of each service sampled every half second during the run; the peak.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import aiohttp
import asyncpg

from services.bench.cpu import CpuMeter
from services.bench.environment import BenchStack, part_settings, prepare_part, service_env
from services.bench.kafkaio import Observer
from services.bench.parts import PartSkipped, module_present
from services.bench.procs import Proc
from services.bench.stats import PIPELINE_CPU_HEADLINE_RATE, Result, latency_summary, pipeline_cpu_per_event
from services.bench.traffic import generate_events
from services.common.avro_codec import AvroCodec
from services.common.config import Settings
from services.stack.process import free_port, port_answers

TICK_S = 0.01
# The SLA monitor keeps up when its position is still for 1.5 s within this long after sending stops.
SLA_CAUGHT_UP_S = 5.0


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc) - EPOCH


def stamp(t: float) -> tuple[str, int]:
    """An RFC 3339 UTC time with microseconds for the wall time `t`, and the same instant in
    microseconds since the epoch (what the Avro records carry)."""
    dt = datetime.fromtimestamp(t, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), (dt - EPOCH) // _ONE_US


async def seed_store(s: Settings, leads: int) -> dict[str, Any]:
    """Put `leads` leads (each a lead.created at stage new, stored as if read long ago) in the
    lifecycle event store, with the service's own migrations, server-side (generate_series)."""
    from services.lifecycle.store import migrate_store

    t0 = time.monotonic()
    conn = await asyncpg.connect(s.postgres_dsn.reveal(), server_settings={"search_path": s.postgres_schema})
    try:
        await migrate_store(conn)
        if leads:
            async with conn.transaction():
                await conn.execute("""
                    INSERT INTO lead_events (lead_id, version, event_id, type, occurred_at, source, payload,
                                             from_stage, to_stage, ignored, channel, segment, fit)
                    SELECT 'SEED-' || lpad(g::text, 8, '0'), 1, 'SEED-' || lpad(g::text, 8, '0') || '-000',
                           'lead.created', now() - interval '30 days' + g * interval '1 ms', 'website',
                           '{"channel":"website","segment":"smb"}'::jsonb, NULL, 'new', NULL, 'website', 'smb',
                           'unknown'
                    FROM generate_series(1, $1) AS g""", leads)
                await conn.execute("""
                    INSERT INTO leads (lead_id, stage, version, owner, team, channel, segment, fit,
                                       created_at, updated_at, stage_entered_at)
                    SELECT lead_id, 'new', 1, NULL, NULL, channel, segment, fit, occurred_at, occurred_at, occurred_at
                    FROM lead_events WHERE version = 1 AND lead_id LIKE 'SEED-%'""")
            await conn.execute("ANALYZE lead_events")
            await conn.execute("ANALYZE leads")
        count = await conn.fetchval("SELECT count(*) FROM leads")
    finally:
        await conn.close()
    return {"leads_in_store": count, "seed_s": round(time.monotonic() - t0, 1)}


class Pipeline:
    """The three services on one part's settings, and the readers of their output topics."""

    def __init__(self, stack: BenchStack, s: Settings) -> None:
        self.stack = stack
        self.s = s
        self.ports = {"ingest": free_port(), "lifecycle": free_port(), "sla_monitor": free_port()}
        self.procs: dict[str, Proc] = {}
        self.sent: dict[str, float] = {}                    # event_id -> request time
        self.by_time: dict[tuple[str, int], str] = {}       # (lead_id, occurred_at us) -> event_id
        self.lifecycle_at: dict[str, float] = {}            # event_id -> arrival of its lifecycle record
        self.lifecycle_broker_ms: dict[str, int] = {}
        self.sla_at: dict[str, float] = {}                  # event_id -> arrival of its first SLA outcome
        self.sla_kinds: dict[str, int] = {}
        self.rss: dict[str, list[float]] = {name: [] for name in self.ports}
        self.sla_codec = AvroCodec("sla_outcome")
        self.events_at: dict[str, float] = {}               # event_id -> arrival on leadflow.events
        self.accepted_at: dict[str, float] = {}             # event_id -> the 202 of its request
        self.events_obs = Observer(s, s.topics.events, on_record=self._on_event)
        self.lifecycle_obs = Observer(s, s.topics.lifecycle, on_record=self._on_lifecycle)
        self.sla_obs = Observer(s, s.topics.sla, on_record=self._on_sla)
        self._position_conn: asyncpg.Connection | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ingest']}/v1/events"

    def _on_lifecycle(self, record, now: float) -> None:
        # lifecycle_record starts with lead_id, event_id (Avro strings); the event id is enough.
        v = record.value
        n = v[10] >> 1 if not v[10] & 0x80 else None
        if n is None:
            return
        p = 11 + n
        m = v[p] >> 1 if not v[p] & 0x80 else None
        if m is None:
            return
        event_id = v[p + 1:p + 1 + m].decode("utf-8", "replace")
        if event_id in self.sent and event_id not in self.lifecycle_at:
            self.lifecycle_at[event_id] = now
            self.lifecycle_broker_ms[event_id] = record.timestamp

    def _on_event(self, record, now: float) -> None:
        # event_envelope starts with event_id
        v = record.value
        if len(v) < 12 or v[10] & 0x80:
            return
        event_id = v[11:11 + (v[10] >> 1)].decode("utf-8", "replace")
        if event_id in self.sent and event_id not in self.events_at:
            self.events_at[event_id] = now

    def _on_sla(self, record, now: float) -> None:
        try:
            out = self.sla_codec.decode(record.value)
        except Exception:  # noqa: BLE001
            return
        kind = out["kind"]
        self.sla_kinds[kind] = self.sla_kinds.get(kind, 0) + 1
        when = out["started_at"] if kind == "started" else out.get("stopped_at")
        if when is None or out.get("lead_id") is None:
            return
        us = (when - EPOCH) // _ONE_US
        event_id = self.by_time.get((out["lead_id"], us))
        if event_id is not None and event_id not in self.sla_at:
            self.sla_at[event_id] = now

    async def start(self, timeout_s: float = 90.0) -> None:
        env = service_env(self.s, **self.ports)
        logs = self.stack.home / "logs"
        for name, module in (("lifecycle", "services.lifecycle"), ("sla_monitor", "services.sla_monitor"),
                             ("ingest", "services.ingest")):
            self.procs[name] = Proc.module(f"latency-{name}", module, [], env, logs)
        deadline = time.monotonic() + timeout_s
        while True:
            dead = [n for n, p in self.procs.items() if not p.alive()]
            if dead:
                raise PartSkipped(f"{dead[0]} exited while starting:\n{self.procs[dead[0]].tail(8)}")
            if all(port_answers("127.0.0.1", port) for port in self.ports.values()) and await self._ready():
                break
            if time.monotonic() > deadline:
                raise PartSkipped(f"the services did not answer within {timeout_s:.0f}s")
            await asyncio.sleep(0.3)
        for obs in (self.events_obs, self.lifecycle_obs, self.sla_obs):
            await obs.start()

    async def _ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{self.ports['ingest']}/readyz") as resp:
                    return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def sla_position(self) -> int | None:
        """Input records the SLA monitor has committed (its sla_input_offsets), or None. One
        connection for the whole part: a connection per poll would start a PostgreSQL backend each
        time and charge its CPU to the pipeline."""
        try:
            if self._position_conn is None or self._position_conn.is_closed():
                self._position_conn = await asyncpg.connect(
                    self.s.postgres_dsn.reveal(), server_settings={"search_path": self.s.postgres_schema})
            return int(await self._position_conn.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM sla_input_offsets") or 0)
        except (OSError, asyncpg.PostgresError):
            return None

    async def sla_settled(self, timeout_s: float, idle_s: float = 1.5, on_move: Callable[[], None] | None = None) -> bool:
        """Wait until the SLA monitor's committed position has not moved for `idle_s` (it has
        caught up with leadflow.lifecycle) and the relay had time to publish. `on_move` is called
        each time the position is seen to move."""
        deadline = time.monotonic() + timeout_s
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            pos = await self.sla_position()
            if pos != last:
                last, since = pos, time.monotonic()
                if on_move is not None:
                    on_move()
            elif time.monotonic() - since >= idle_s:
                return True
            await asyncio.sleep(0.25)
        return False

    def sample_rss(self) -> None:
        for name, proc in self.procs.items():
            mb = proc.rss_mb()
            if mb is not None:
                self.rss[name].append(mb)

    async def stop(self) -> None:
        for obs in (self.events_obs, self.lifecycle_obs, self.sla_obs):
            try:
                await obs.stop()
            except Exception:  # noqa: BLE001
                pass
        if self._position_conn is not None:
            self._position_conn.terminate()   # no round trip: the server may be stopping
        for proc in self.procs.values():
            proc.stop()


async def _poll_forever(obs: Observer) -> None:
    while True:
        await obs.poll(20)


async def run_rung(p: Pipeline, session: aiohttp.ClientSession, events: list[dict], rate: int, duration_s: float,
                   max_in_flight: int = 64) -> dict[str, Any]:
    """Post `rate` events/s for `duration_s` on a fixed schedule; returns what the client did."""
    per_tick = max(1, round(rate * TICK_S))
    ticks = int(duration_s / TICK_S)
    sem = asyncio.Semaphore(max_in_flight)
    errors: list[str] = []
    statuses: dict[int, int] = {}
    tasks: set[asyncio.Task] = set()
    sent_events = 0
    sent_ids: list[str] = []
    late_ticks = 0

    async def post(batch: list[dict], body: bytes) -> None:
        try:
            async with session.post(p.url, data=body, headers={"Content-Type": "application/json"}) as resp:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status != 202:
                    errors.append(f"{resp.status}: {(await resp.text())[:200]}")
                else:
                    done = time.time()
                    for e in batch:
                        p.accepted_at[e["event_id"]] = done
        except aiohttp.ClientError as exc:
            errors.append(repr(exc))
        finally:
            sem.release()

    t0 = time.perf_counter()
    wall0 = time.time()
    cursor = 0
    for k in range(ticks):
        target = t0 + k * TICK_S
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -TICK_S:
            late_ticks += 1
        batch = events[cursor:cursor + per_tick]
        if not batch:
            break
        cursor += len(batch)
        await sem.acquire()
        now = time.time()
        for i, e in enumerate(batch):
            e["occurred_at"], key_us = stamp(now + i * 1e-6)
            p.sent[e["event_id"]] = now
            p.by_time[(e["lead_id"], key_us)] = e["event_id"]
            sent_ids.append(e["event_id"])
        body = json.dumps(batch, separators=(",", ":")).encode()
        task = asyncio.create_task(post(batch, body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent_events += len(batch)
    if tasks:
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return {
        "target_rate": rate,
        "duration_s": round(elapsed, 2),
        "sent": sent_events,
        "client_rate": round(sent_events / elapsed, 1) if elapsed > 0 else None,
        "late_ticks": late_ticks,
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors[:5],
        "started_at": wall0,
        "ids": sent_ids,
    }


def _rung_figures(p: Pipeline, client: dict[str, Any], drain_s: float) -> dict[str, Any]:
    ids = client.pop("ids")
    lifecycle = [p.lifecycle_at[i] - p.sent[i] for i in ids if i in p.lifecycle_at]
    broker = [p.lifecycle_broker_ms[i] / 1000 - p.sent[i] for i in ids if i in p.lifecycle_broker_ms]
    sla = [p.sla_at[i] - p.sent[i] for i in ids if i in p.sla_at]
    out = dict(client)
    # Where the time goes: the 202, the record on leadflow.events, then the lifecycle record.
    out["breakdown"] = {
        "http_202": latency_summary([p.accepted_at[i] - p.sent[i] for i in ids if i in p.accepted_at]),
        "on_events_topic": latency_summary([p.events_at[i] - p.sent[i] for i in ids if i in p.events_at]),
        "events_topic_to_lifecycle_record": latency_summary(
            [p.lifecycle_at[i] - p.events_at[i] for i in ids if i in p.lifecycle_at and i in p.events_at]),
    }
    out["lifecycle"] = latency_summary(lifecycle)
    out["lifecycle_broker_append"] = latency_summary(broker)
    out["sla"] = latency_summary(sla)
    out["lifecycle_received"] = len(lifecycle)
    out["behind_at_end_of_sending"] = client.get("behind_at_end")
    out["drain_s"] = round(drain_s, 2)
    return out


async def _measure_rung(p: Pipeline, session: aiohttp.ClientSession, meter: CpuMeter, batch: list[dict],
                        rate: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """One rung: send `batch` at `rate`, wait for the lifecycle records and for the SLA monitor to
    catch up, and measure the latencies and the CPU of every process.

    The pipeline's CPU per event is taken from the rung's start to the last move of the SLA
    monitor's committed position (the pipeline had then done all its work on these events; the
    idle wait that proves it is left out), divided by the events sent."""
    sampler = asyncio.create_task(_sample(p))
    cpu_before, cpu_t0 = meter.snapshot(), time.monotonic()
    client = await run_rung(p, session, batch, rate, cfg["duration_s"])
    cpu_share = meter.shares(cpu_before, meter.snapshot(), time.monotonic() - cpu_t0)
    ids = client["ids"]
    client["behind_at_end"] = sum(1 for i in ids if i not in p.lifecycle_at)
    t_end = time.monotonic()
    await _wait(lambda: all(i in p.lifecycle_at for i in ids), cfg["drain_s"])
    drain = time.monotonic() - t_end
    last_move = {"cpu": meter.snapshot(), "at": time.monotonic()}

    def moved() -> None:
        last_move["cpu"], last_move["at"] = meter.snapshot(), time.monotonic()

    # The SLA monitor catches up (and its relay publishes) before the next rung starts.
    client["sla_caught_up"] = await p.sla_settled(cfg["sla_drain_s"], on_move=moved)
    client["sla_drain_s"] = round(time.monotonic() - t_end, 2)
    sampler.cancel()
    rung = _rung_figures(p, client, drain)
    rung["cpu_share_while_sending"] = cpu_share
    rung["pipeline_cpu"] = pipeline_cpu_per_event(cpu_before, last_move["cpu"], client["sent"])
    rung["pipeline_cpu"]["window_s"] = round(last_move["at"] - cpu_t0, 2)
    rung["sustained"] = (rung["client_rate"] or 0) >= 0.95 * rate and client["behind_at_end"] <= 2 * rate \
        and rung["lifecycle_received"] == len(ids) and not rung["errors"] \
        and client["sla_caught_up"] and client["sla_drain_s"] <= SLA_CAUGHT_UP_S
    return rung


async def latency_part(options, stack: BenchStack, result: Result, log, started: float | None = None) -> None:
    for module in ("services.ingest", "services.lifecycle", "services.sla_monitor"):
        reason = module_present(module)
        if reason:
            raise PartSkipped(reason)
    cfg = {
        "rates": [5000, 2500, 1000, 500, 250],
        "duration_s": 6.0 if options.quick else 30.0,
        "seed_leads": 100_000 if options.quick else 1_000_000,
        "drain_s": 20.0,
        "sla_drain_s": 60.0 if options.quick else 180.0,
        "cpu_rates": [5000, 1000],
        "idle_s": 3.0,
    }
    cfg.update(options.latency)
    s = part_settings(stack, "latency", options.partitions)
    await prepare_part(s)
    seeded = await seed_store(s, cfg["seed_leads"])
    log(f"  {seeded['leads_in_store']:,} leads in the event store (seeded in {seeded['seed_s']}s)")
    total = int(sum(r * cfg["duration_s"] for r in [*cfg["rates"], *cfg["cpu_rates"]])) + 2000
    events = list(generate_events(total, seed=options.seed + 1, start=datetime.now(timezone.utc),
                                  lead_prefix=f"LAT{uuid.uuid4().hex[:6]}-", concurrent_leads=2000))
    p = Pipeline(stack, s)
    doc: dict[str, Any] = {"config": {k: v for k, v in cfg.items()}, **seeded, "rungs": []}
    result.parts["latency"] = doc
    pollers: list[asyncio.Task] = []
    try:
        await p.start()
        meter = CpuMeter()
        for name, proc in p.procs.items():
            meter.add(name, proc.cpu_s)
        meter.add_stack(stack)
        pollers = [asyncio.create_task(_poll_forever(obs)) for obs in (p.events_obs, p.lifecycle_obs, p.sla_obs)]
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            # Warm-up: every consumer has joined and every producer is connected before timing.
            warm = events[:1000]
            cursor = len(warm)
            await run_rung(p, session, warm, 500, 2.0)
            if not await _wait(lambda: all(e["event_id"] in p.lifecycle_at for e in warm), 60):
                raise PartSkipped("warm-up: the lifecycle records of the first 1,000 events did not arrive in 60s")
            await p.sla_settled(60)
            # The pipeline's CPU with no traffic (polls, heartbeats, timers): the part of a rung's
            # CPU per event that follows time, not events.
            idle_before, idle_t0 = meter.snapshot(), time.monotonic()
            await asyncio.sleep(cfg["idle_s"])
            doc["idle_cpu_share"] = meter.shares(idle_before, meter.snapshot(), time.monotonic() - idle_t0)
            log(f"  idle: CPU busy {doc['idle_cpu_share']['total']:.2f} of {doc['idle_cpu_share']['cores']} cores "
                f"({', '.join(f'{k} {v:.2f}' for k, v in doc['idle_cpu_share'].items() if k not in ('total', 'cores') and v is not None)})")

            async def measure(rate: int, purpose: str) -> dict[str, Any]:
                nonlocal cursor
                n = int(rate * cfg["duration_s"])
                batch = events[cursor:cursor + n]
                cursor += n
                log(f"  {rate:,} events/s for {cfg['duration_s']:.0f}s{purpose} ...")
                rung = await _measure_rung(p, session, meter, batch, rate, cfg)
                doc["rungs"].append(rung)
                cpu = rung["pipeline_cpu"]
                result.set_pipeline_cpu(rate, cpu)
                total = cpu["pipeline_us_per_event"]
                log(f"    client {rung['client_rate']:,.0f}/s, behind {rung['behind_at_end_of_sending']:,}, "
                    f"lifecycle p99 {rung['lifecycle']['p99_ms']} ms, sla p99 {rung['sla']['p99_ms']} ms"
                    f", CPU busy {rung['cpu_share_while_sending']['total']:.2f} of "
                    f"{rung['cpu_share_while_sending']['cores']} cores, pipeline CPU "
                    f"{'—' if total is None else f'{total:,.0f}'} µs/event"
                    f"{'' if rung['sustained'] else ' (not sustained)'}")
                return rung

            def out_of_time(rate: int) -> bool:
                if options.deadline_s and started is not None and \
                        time.monotonic() - started + cfg["duration_s"] + 15 > options.deadline_s:
                    doc["stopped"] = (f"the ladder stopped before {rate:,}/s: the run's time budget of "
                                      f"{options.deadline_s:.0f}s (--quick) would be exceeded")
                    log(f"  {doc['stopped']}")
                    return True
                return False

            chosen = None
            for rate in cfg["rates"]:
                if out_of_time(rate):
                    break
                rung = await measure(rate, "")
                if rung["sustained"]:
                    chosen = rung
                    break
            # The pipeline's CPU per event is reported at fixed rates whichever rung held.
            for rate in cfg["cpu_rates"]:
                if rate in result.pipeline_cpu:
                    continue
                if out_of_time(rate):
                    break
                rung = await measure(rate, " (for the pipeline CPU per event)")
                rung["cpu_only"] = True
        p.sample_rss()
        doc["sla_outcome_kinds"] = dict(p.sla_kinds)
        doc["rss_samples"] = {n: len(v) for n, v in p.rss.items()}
        for name, samples in p.rss.items():
            if samples:
                result.set_rss(name, max(samples))
            else:
                result.set_rss(name, None, f"{name}: no memory sample")
        doc["rss_mb_at_end"] = {n: round(v[-1], 1) if v else None for n, v in p.rss.items()}
        doc["rss_mb_peak"] = {n: round(max(v), 1) if v else None for n, v in p.rss.items()}
        if result.figures["pipeline_cpu_us_per_event"] is None:
            result.skip("pipeline_cpu_us_per_event",
                        doc.get("stopped") or f"no rung at {PIPELINE_CPU_HEADLINE_RATE:,} events/s was run")
        if chosen is None:
            reason = "no rate of the ladder was sustained (see parts.latency.rungs)"
            if doc.get("stopped"):
                reason += "; " + doc["stopped"]
            for key in ("latency_rate_per_s", "lifecycle_p50_ms", "lifecycle_p99_ms", "sla_p50_ms", "sla_p99_ms"):
                result.skip(key, reason)
            return
        result.set("latency_rate_per_s", chosen["target_rate"])
        result.set("lifecycle_p50_ms", chosen["lifecycle"]["p50_ms"], "no lifecycle record matched")
        result.set("lifecycle_p99_ms", chosen["lifecycle"]["p99_ms"], "no lifecycle record matched")
        result.set("sla_p50_ms", chosen["sla"]["p50_ms"], "no SLA outcome matched a request")
        result.set("sla_p99_ms", chosen["sla"]["p99_ms"], "no SLA outcome matched a request")
    finally:
        for task in pollers:
            task.cancel()
        await p.stop()
        from services.bench.parts import service_phases

        phases = service_phases(stack.home / "logs" / "latency-lifecycle.log")
        if phases:
            doc["lifecycle_seconds_per_step"] = phases


async def _sample(p: Pipeline) -> None:
    while True:
        p.sample_rss()
        await asyncio.sleep(0.5)


async def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()
