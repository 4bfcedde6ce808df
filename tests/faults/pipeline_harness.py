"""The whole pipeline under faults: ingest x2, lifecycle x2 and the SLA monitor as real processes
on a real Kafka (one broker or a three-broker cluster) and PostgreSQL, a Plan streamed through
them (pipeline_plan, pipeline_traffic), faults injected at seeded points while it streams, then
everything checked from outside (pipeline_checks) and reported as a table and one closing line.

`run_faults(settings, stack, config, workdir)` runs one configuration; `print_report` prints the
runs' tables and `closing_line` the line `faults: N events, K faults, 0 lost, ...`.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from aiokafka.admin import AIOKafkaAdminClient

from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.config import Settings
from services.common.envelope import Event
from services.common.kafka import make_producer
from services.lifecycle.batch import lifecycle_record
from services.lifecycle.domain import run_log
from tests.faults import pipeline_checks as checks
from tests.faults.lifecycle_harness import read_raw
from tests.faults.pipeline_plan import POLICY, SPEED_TO_LEAD_DUE_S, build_plan
from tests.faults.pipeline_procs import Pipeline, ServiceProc
from tests.faults.pipeline_traffic import Traffic

PII_MARKER = "poison.pii@example.com"   # inside a poison record: must never reach a log
KILLS = {"kill ingest", "kill lifecycle", "kill sla_monitor"}


class StackControl(Protocol):
    """What the suite may do to the servers under the pipeline (tests/faults/stack_control.py)."""

    def restart_kafka(self) -> None: ...
    def restart_postgres(self) -> None: ...
    def broker_pids(self) -> dict[int, int]: ...      # node id -> pid (a cluster)
    def restart_broker(self, node_id: int) -> None: ...


@dataclass
class RunConfig:
    name: str
    events: int
    duration_s: float
    faults: list[str]
    seed: int
    partitions: int = 3


@dataclass
class FaultRecord:
    name: str
    at_s: float
    recovery_s: float | None
    detail: str = ""


@dataclass
class RunReport:
    config: RunConfig
    result: checks.CheckResult
    faults: list[FaultRecord]
    wall_s: float
    events_sent: int
    unplanned_exits: dict[str, list[int]] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    pii_in_logs: int = 0
    poison_logged: int = 0

    @property
    def passed(self) -> bool:
        r = self.result
        return (r.lost == r.duplicated == r.out_of_order == r.mismatches == r.false_pages == 0
                and r.poison_set_aside == r.poison_injected and r.dlq_found == r.dlq_expected
                and self.pii_in_logs == 0 and all(f.recovery_s is not None for f in self.faults))

    def to_json(self) -> dict:
        return {"config": asdict(self.config), "result": asdict(self.result),
                "faults": [asdict(f) for f in self.faults], "wall_s": round(self.wall_s, 1),
                "events_sent": self.events_sent, "unplanned_exits": self.unplanned_exits,
                "exit_codes": self.exit_codes, "pii_in_logs": self.pii_in_logs, "passed": self.passed}


# --- poison -------------------------------------------------------------------------------------

def poison_values(kind: str) -> list[tuple[str, bytes | None]]:
    """(what, value) of the four poison records for a topic carrying `kind` records."""
    event = Event("poison-e1", "POISON-1", "lead.created", datetime(2026, 12, 1, tzinfo=timezone.utc), "website",
                  {"channel": "website", "segment": "smb", "email": PII_MARKER})
    if kind == "event_envelope":
        good = AvroCodec("event_envelope").encode(event_to_avro(event))
    else:
        t = next(iter(run_log([event])))
        good = AvroCodec("lifecycle_record").encode(lifecycle_record(t, event_to_avro(event)))
    return [
        ("not avro", json.dumps({"email": PII_MARKER, "note": "not avro"}).encode()),
        ("wrong schema fingerprint", good[:2] + bytes(8) + good[10:]),
        ("truncated", good[: len(good) // 2]),
        ("tombstone", None),
    ]


async def inject_poison(settings: Settings, topic: str, kind: str) -> list[tuple[int, int]]:
    producer = make_producer(settings)
    await producer.start()
    try:
        where = []
        for n, (_what, value) in enumerate(poison_values(kind)):
            meta = await (await producer.send(topic, key=f"poison-{n}".encode(), value=value))
            where.append((meta.partition, meta.offset))
        return where
    finally:
        await producer.stop()


async def poison_set_aside(settings: Settings, topic: str, where: list[tuple[int, int]]) -> int:
    if topic == settings.topics.events:
        rows = await checks.query(settings, "SELECT kafka_partition AS p, kafka_offset AS o, error "
                                            "FROM unreadable_records WHERE kafka_topic = $1", topic)
    else:
        rows = await checks.query(settings, 'SELECT partition AS p, "offset" AS o, error '
                                            "FROM sla_unreadable_records WHERE topic = $1", topic)
    found = {(r["p"], r["o"]) for r in rows if r["error"]}
    return sum(1 for w in where if w in found)


# --- the run ------------------------------------------------------------------------------------

class FaultRun:
    def __init__(self, settings: Settings, stack: StackControl, config: RunConfig, workdir: Path) -> None:
        self.settings = settings.with_changes(topic_partitions=config.partitions)
        self.stack = stack
        self.config = config
        self.rng = random.Random(config.seed)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.policy = workdir / "policy.toml"
        self.policy.write_text(POLICY, encoding="utf-8")
        self.pipeline = Pipeline(self.settings, self.policy, workdir / "logs")
        self.faults: list[FaultRecord] = []
        self.poison: list[tuple[str, list[tuple[int, int]]]] = []
        self.t_stream = 0.0
        self.traffic: Traffic | None = None

    def _alive_ingest_ports(self) -> list[int]:
        ports = [p.port for p in self.pipeline.ingest if p.alive]
        return ports or [p.port for p in self.pipeline.ingest]

    async def _progress(self) -> tuple[int, int] | None:
        try:
            return await checks.progress(self.settings)
        except Exception:  # noqa: BLE001 - Postgres restarting, tables not there yet: no progress known
            return None

    async def _recovered(self, since: float, procs: list[ServiceProc] = (), extra=None, timeout: float = 180) -> float | None:
        """Seconds from `since` until the pipeline works end to end again: each stage (events
        stored by the lifecycle, lifecycle records applied by the SLA monitor) has moved forward
        or has nothing left to do (the stream may be over), `procs` answer and `extra()` holds."""
        base = None
        while base is None and time.monotonic() - since < timeout:
            base = await self._progress()
            if base is None:
                await asyncio.sleep(0.2)
        done = [False, False]
        while time.monotonic() - since < timeout:
            now = await self._progress()
            if now is not None and base is not None:
                done[0] = done[0] or now[0] > base[0] or now[0] >= len(self.traffic.accepted)
                done[1] = done[1] or now[1] > base[1] or (done[0] and await self._monitor_caught_up())
            if all(done) and all(p.answers() for p in procs) and (extra is None or await extra()):
                return time.monotonic() - since
            await asyncio.sleep(0.2)
        return None

    async def _monitor_caught_up(self) -> bool:
        """The SLA monitor has applied every record on leadflow.lifecycle."""
        s = self.settings
        try:
            ends = await checks.next_record_offsets(s, s.topics.lifecycle)
            rows = await checks.query(s, "SELECT partition, next_offset FROM sla_input_offsets WHERE topic = $1",
                                      s.topics.lifecycle)
        except Exception:  # noqa: BLE001 - a server coming back: not known yet
            return False
        applied = {r["partition"]: r["next_offset"] for r in rows}
        return all(applied.get(p, 0) >= o for p, o in ends.items())

    async def _inject(self, name: str) -> FaultRecord:
        at = time.monotonic() - self.t_stream
        t = time.monotonic()
        detail = ""
        procs: list[ServiceProc] = []
        extra = None
        if name in KILLS:
            group = {"kill ingest": self.pipeline.ingest, "kill lifecycle": self.pipeline.lifecycle,
                     "kill sla_monitor": [self.pipeline.sla]}[name]
            victim = self.rng.choice(group)
            victim.kill()
            await asyncio.sleep(self.rng.uniform(0.0, 1.5))
            victim.start()
            procs, detail = [victim], victim.name
        elif name == "restart kafka":
            await asyncio.to_thread(self.stack.restart_kafka)
        elif name == "restart postgres":
            await asyncio.to_thread(self.stack.restart_postgres)
        elif name in ("poison events", "poison lifecycle"):
            topic, kind = ((self.settings.topics.events, "event_envelope") if name == "poison events"
                           else (self.settings.topics.lifecycle, "lifecycle_record"))
            where = await inject_poison(self.settings, topic, kind)
            self.poison.append((topic, where))
            detail = f"{len(where)} records at {where}"

            async def extra() -> bool:
                try:
                    return await poison_set_aside(self.settings, topic, where) == len(where)
                except Exception:  # noqa: BLE001 - not yet readable
                    return False
        elif name == "kill leader broker":
            node_id = await self._leader_of_most(self.settings.topics.events)
            os.kill(self.stack.broker_pids()[node_id], signal.SIGKILL)
            detail = f"broker {node_id} (SIGKILL, restarted after recovery)"
        else:
            raise ValueError(f"unknown fault {name!r}")
        recovery = await self._recovered(t, procs, extra)
        if name == "kill leader broker":
            await asyncio.to_thread(self.stack.restart_broker, node_id)
        return FaultRecord(name, round(at, 1), None if recovery is None else round(recovery, 1), detail)

    async def _leader_of_most(self, topic: str) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        leaders = [p["leader"] for p in described[0]["partitions"]]
        return max(set(leaders), key=leaders.count)

    async def _faults(self) -> None:
        names = list(self.config.faults)
        self.rng.shuffle(names)
        d = self.config.duration_s
        slot = 0.75 * d / max(1, len(names))
        for i, name in enumerate(names):
            at = 0.1 * d + i * slot + self.rng.uniform(0, slot / 3)
            await asyncio.sleep(max(0.0, at - (time.monotonic() - self.t_stream)))
            self.faults.append(await self._inject(name))

    async def _wait(self, what: str, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await predicate():
                    return True
            except Exception:  # noqa: BLE001 - a server still coming back: ask again
                pass
            await asyncio.sleep(0.5)
        print(f"[{self.config.name}] gave up waiting for {what} after {timeout:.0f}s")
        return False

    async def _first_seen(self) -> bool:
        rows = await checks.query(self.settings, "SELECT state->>'first_seen_at' AS f FROM sla_engine_state")
        return bool(rows and rows[0]["f"])

    def _timer_after(self, when: datetime) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.pipeline.sla.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return False
        for line in text.splitlines():
            if line.startswith("leadflow_sla_timer_last_run_timestamp_seconds "):
                return float(line.split()[1]) > when.timestamp()
        return False

    async def run(self) -> RunReport:
        started = time.monotonic()
        t0 = datetime.now(timezone.utc)
        plan = build_plan(self.config.events, self.config.duration_s, self.config.seed, t0)
        traffic = self.traffic = Traffic(self.settings, plan, self._alive_ingest_ports)
        await self.pipeline.start()
        try:
            await traffic.send_preamble()
            await self._wait("the SLA monitor's first event", self._first_seen, 120)
            self.t_stream = time.monotonic()
            fault_task = asyncio.create_task(self._faults())
            await traffic.run()
            await fault_task
            report = await self._drain_and_check(plan, traffic, started)
        except BaseException:
            print(self.pipeline.tails())
            raise
        finally:
            self.pipeline.kill_all()
        return report

    async def _drain_and_check(self, plan, traffic: Traffic, started: float) -> RunReport:
        s = self.settings
        n_accepted = len(traffic.accepted)

        async def all_stored() -> bool:
            got = await self._progress()
            return got is not None and got[0] >= n_accepted

        await self._wait("every accepted event stored", all_stored, 300)
        await self._wait("the SLA monitor at the end of leadflow.lifecycle", self._monitor_caught_up, 300)
        # Every live clock due by now (the last event + the due time), then the clock time at `until`.
        last_due = plan.last_occurred_at + timedelta(seconds=SPEED_TO_LEAD_DUE_S + 3)
        await asyncio.sleep(max(0.0, (last_due - datetime.now(timezone.utc)).total_seconds()))
        until = datetime.now(timezone.utc).replace(microsecond=0)
        async def timer_past_until() -> bool:
            return self._timer_after(until)

        await self._wait("the SLA timer past --until", timer_past_until, 120)

        async def relay_done() -> bool:
            emitted = await checks.query(s, "SELECT count(*) AS n FROM sla_emissions")
            return len(await read_raw(s, s.topics.sla)) >= emitted[0]["n"]

        await self._wait("the relay at the end of the outbox", relay_done, 120)
        exit_codes = await self.pipeline.stop()

        result = checks.CheckResult()
        rows = await checks.query(s, "SELECT lead_id, version, event_id FROM lead_events")
        lifecycle = await read_raw(s, s.topics.lifecycle)
        checks.check_events(result, traffic.accepted_order, rows, lifecycle)
        events_file = self.workdir / "accepted-events.jsonl"
        with events_file.open("w", encoding="utf-8") as out:
            for event in traffic.sequence:
                out.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        replay = await asyncio.to_thread(checks.replay_lines, events_file, self.policy, until)
        clock_rows = await checks.query(s, "SELECT clock_id, outcome, snapshot::text AS snapshot FROM sla_clocks")
        window_rows = await checks.query(s, "SELECT outcome, snapshot::text AS snapshot FROM sla_windows")
        checks.check_outcomes(result, checks.live_lines(clock_rows, window_rows), replay)
        final = {r["clock_id"]: r["outcome"] for r in clock_rows}
        checks.check_pages(result, await read_raw(s, s.topics.sla), final)
        for topic, where in self.poison:
            result.poison_injected += len(where)
            result.poison_set_aside += await poison_set_aside(s, topic, where)
        bad_ids = {json.loads(v)["event_id"] for v in plan.invalid_inbound}
        dlq = await read_raw(s, s.topics.dlq)
        found = set()
        for _p, _o, _k, value in dlq:
            try:
                found.add(json.loads(value)["event_id"])
            except (ValueError, KeyError, TypeError):
                pass
        result.dlq_expected, result.dlq_found = len(bad_ids), len(bad_ids & found)
        logs = [p.log_text() for p in self.pipeline.all]
        return RunReport(
            self.config, result, self.faults, time.monotonic() - started, traffic.sent_records,
            unplanned_exits={p.name: p.unplanned_exits for p in self.pipeline.all if p.unplanned_exits},
            exit_codes=exit_codes,
            pii_in_logs=sum(text.count(PII_MARKER) for text in logs),
            poison_logged=sum(text.count("kept in unreadable_records") + text.count("kept in sla_unreadable_records")
                              for text in logs),
        )


async def run_faults(settings: Settings, stack: StackControl, config: RunConfig, workdir: Path) -> RunReport:
    return await FaultRun(settings, stack, config, workdir).run()


# --- the report ---------------------------------------------------------------------------------

def print_report(reports: list[RunReport]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="leadflow fault suite")
    for col in ("run", "events", "faults", "lost", "duplicated", "out of order", "mismatches", "false pages",
                "poison set aside", "dlq", "clocks", "windows", "wall s"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for r in reports:
        x = r.result
        table.add_row(r.config.name, f"{x.accepted:,}", str(len(r.faults)), str(x.lost), str(x.duplicated),
                      str(x.out_of_order), str(x.mismatches), str(x.false_pages),
                      f"{x.poison_set_aside}/{x.poison_injected}", f"{x.dlq_found}/{x.dlq_expected}",
                      f"{x.clocks:,}", f"{x.windows:,}", f"{r.wall_s:.0f}")
    console.print(table)
    faults = Table(title="faults and recovery (until a new event is stored and applied by the SLA monitor)")
    for col in ("run", "at s", "fault", "detail", "recovery s"):
        faults.add_column(col)
    for r in reports:
        for f in r.faults:
            faults.add_row(r.config.name, f"{f.at_s:.1f}", f.name, f.detail[:60],
                           "NOT RECOVERED" if f.recovery_s is None else f"{f.recovery_s:.1f}")
    console.print(faults)
    for r in reports:
        if r.unplanned_exits:
            console.print(f"{r.config.name}: services that exited by themselves (restarted): {r.unplanned_exits}")
        for kind, items in r.result.examples.items():
            console.print(f"{r.config.name}: {kind}: {items}")
        if r.pii_in_logs:
            console.print(f"{r.config.name}: personal data from a poison record found {r.pii_in_logs}x in the logs")


def closing_line(reports: list[RunReport]) -> str:
    n = sum(r.result.accepted for r in reports)
    k = sum(len(r.faults) for r in reports)
    lost = sum(r.result.lost for r in reports)
    dup = sum(r.result.duplicated for r in reports)
    ooo = sum(r.result.out_of_order for r in reports)
    mis = sum(r.result.mismatches for r in reports)
    return f"faults: {n} events, {k} faults, {lost} lost, {dup} duplicated, {ooo} out of order, {mis} mismatches"
