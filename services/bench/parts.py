"""Parts 2-5 of the benchmark: the passthrough ceiling, the Faust peer, the lifecycle service end to
end, the SLA monitor and the do-nothing Faust agent. Each part gets topics (and a schema) of its
own, its input preloaded before the process under test starts, and is timed from the moment its
first output appears to the moment the last one does (start-up and group joins left out).

Throughput is what a downstream reader sees: an Observer reads the output topic read_committed
in the benchmark process. Where a part has no output topic (the SLA monitor's input position,
the floor agent's count), its own committed position or report is the clock.
"""
from __future__ import annotations

import asyncio
import importlib.util
import re
import time
from pathlib import Path
from typing import Any

import asyncpg

from services.bench.dataset import Dataset, lifecycle_records
from services.bench.environment import BenchStack, part_settings, prepare_part, service_env
from services.bench.kafkaio import Observer, create_log_append_topic, produce_records, wait_group
from services.bench.procs import Proc, ProcGroup, read_report, wait_report
from services.bench.stats import rate, window_rate
from services.common.config import Settings
from services.stack.process import free_port


class PartSkipped(Exception):
    """The part cannot run (or did not finish); the message is the reason shown for its figures."""


def module_present(module: str) -> str | None:
    """None when `python -m module` can run here, else why not."""
    try:
        spec = importlib.util.find_spec(f"{module}.__main__")
    except (ImportError, ValueError) as exc:
        return f"{module} cannot be imported: {exc}"
    if spec is None:
        return f"{module} has no __main__ yet (`python -m {module}` cannot run in this tree)"
    return None


def _observer_figures(observer: Observer, expected: int) -> dict[str, Any]:
    """The part's rate from the broker's timestamps of its output records (the time each was
    written), and the rate a reader saw, from the wall times of its polls, beside it."""
    a = observer.arrivals
    window = a.broker_window()
    return {
        "records_seen": a.count,
        "expected": expected,
        "events_per_s": rate(*window) if window else None,
        "clock": "broker LogAppendTime of the output records, first to last",
        "broker_window_s": round(window[1], 3) if window else None,
        "reader_events_per_s": window_rate(a.count, a.first_count, a.first_at, a.last_at),
        "reader_window_s": round(a.last_at - a.first_at, 3) if a.first_at and a.last_at else None,
    }


async def _prepare_with_output(s: Settings, schema: bool) -> None:
    """The part's topics, its output (leadflow.lifecycle) with broker timestamps."""
    await create_log_append_topic(s, s.topics.lifecycle)
    await prepare_part(s, schema=schema)


async def _run_to_output(settings: Settings, proc_factory, expected: int, timeout_s: float, log_dir: Path,
                         name: str) -> dict[str, Any]:
    # proc_factory() -> a Proc or a ProcGroup
    """Start the process under test with its input preloaded, observe its output until `expected`
    records arrived, then stop it. Returns the figures; raises PartSkipped when it fell short."""
    observer = Observer(settings, settings.topics.lifecycle)
    await observer.start()
    proc: Proc | ProcGroup | None = None
    try:
        started = time.time()
        proc = proc_factory()
        if asyncio.iscoroutine(proc):
            proc = await proc
        ok = await observer.wait_for(expected, timeout_s, stalled_s=60, alive=proc.alive)
        figures = _observer_figures(observer, expected)
        figures["wall_with_startup_s"] = round((observer.arrivals.last_at or time.time()) - started, 3)
        figures["rss_mb"] = proc.rss_mb()
        figures["process_cpu_s"] = proc.cpu_s()
        if figures["process_cpu_s"]:
            figures["events_per_process_cpu_s"] = round(expected / figures["process_cpu_s"], 1)
        if not ok:
            state = "exited" if not proc.alive() else "still running"
            raise PartSkipped(
                f"{name}: only {observer.arrivals.count} of {expected} records arrived within {timeout_s:.0f}s "
                f"({state}); log {proc.log_file}:\n{proc.tail(8)}")
        return figures
    finally:
        if proc is not None:
            proc.stop()
        await observer.stop()


async def passthrough_part(stack: BenchStack, ds: Dataset, partitions: int, timeout_s: float) -> dict[str, Any]:
    s = part_settings(stack, "passthrough", partitions)
    await _prepare_with_output(s, schema=False)
    await produce_records(s, s.topics.events, ds.messages)
    report = stack.home / f"report-{s.instance_id}.json"

    def start() -> Proc:
        return Proc.module("passthrough", "services.bench.workers", [
            "passthrough", "--input", s.topics.events, "--output", s.topics.lifecycle,
            "--count", str(len(ds.messages)), "--report", str(report), "--group", f"{s.instance_id}-pt",
        ], service_env(s), stack.home / "logs")

    figures = await _run_to_output(s, start, len(ds.messages), timeout_s, stack.home / "logs", "passthrough")
    worker = read_report(report)
    if worker:
        figures["worker"] = worker
        figures["events_per_worker_cpu_s"] = round(worker["count"] / worker["cpu_s"], 1) if worker.get("cpu_s") else None
    return figures


async def faust_peer_part(stack: BenchStack, ds: Dataset, partitions: int, timeout_s: float) -> dict[str, Any]:
    s = part_settings(stack, "faustpeer", partitions)
    await _prepare_with_output(s, schema=False)
    await produce_records(s, s.topics.events, ds.messages)
    expected = len(lifecycle_records(ds))
    report = stack.home / f"report-{s.instance_id}.json"
    datadir = stack.home / f"faust-{s.instance_id}"

    def start() -> Proc:
        return Proc.module("faust-peer", "services.bench.workers", [
            "faust-peer", "--input", s.topics.events, "--output", s.topics.lifecycle,
            "--count", str(len(ds.messages)), "--report", str(report), "--group", f"{s.instance_id}-peer",
            "--datadir", str(datadir),
        ], service_env(s), stack.home / "logs")

    figures = await _run_to_output(s, start, expected, timeout_s, stack.home / "logs", "faust peer")
    figures["style"] = "@app.agent over stream.events(), await topic.send() per event, lead states in a dict"
    worker = read_report(report)
    if worker:
        figures["worker"] = worker
    return figures


async def lifecycle_part(stack: BenchStack, ds: Dataset, partitions: int, timeout_s: float,
                         instances: int = 1) -> dict[str, Any]:
    """The lifecycle service end to end; `instances` processes share the partitions (one group)."""
    reason = module_present("services.lifecycle")
    if reason:
        raise PartSkipped(reason)
    s = part_settings(stack, "lifecycle", partitions)
    await _prepare_with_output(s, schema=True)
    expected = len(lifecycle_records(ds))
    if instances == 1:
        await produce_records(s, s.topics.events, ds.messages)

    async def start() -> ProcGroup:
        procs = []
        for i in range(instances):
            env = service_env(s, lifecycle=free_port())
            env["LEADFLOW_INSTANCE_ID"] = f"{s.instance_id}-{i}"
            procs.append(Proc.module("lifecycle" if i == 0 else f"lifecycle-{i}", "services.lifecycle", [], env,
                                     stack.home / "logs"))
        group = ProcGroup(procs)
        if instances > 1:
            # Several instances: the input goes in once every instance holds its partitions, so no
            # rebalance falls inside the measured window.
            from services.lifecycle.service import default_group_id

            if not await wait_group(s, default_group_id(s), instances, 90):
                group.stop()
                raise PartSkipped(f"lifecycle: {instances} instances did not form a stable group within 90s")
            await asyncio.sleep(1.0)   # their recovery on assignment
            await produce_records(s, s.topics.events, ds.messages)
        return group

    figures = await _run_to_output(s, start, expected, timeout_s, stack.home / "logs", "lifecycle service")
    if instances > 1:
        figures["method"] = "instances started first; input produced once the group was stable"
    figures["store"] = await _count_rows(s, "lead_events", "leads")
    figures["instances"] = instances
    figures["partitions"] = partitions
    phases = service_phases(stack.home / "logs" / "lifecycle.log")
    if phases:
        figures["service_seconds_per_step"] = phases
    return figures


_PHASES = re.compile(r"(\d+) events stored in (\d+) rounds(?: \((\d+) Kafka transactions\))?; seconds per step: (.*)$")


def service_phases(log_file: Path) -> dict[str, float] | None:
    """The lifecycle service's own account of where its time went, from the line it logs when it
    stops (`... N events stored in R rounds (T Kafka transactions); seconds per step: decode 0.77, ...`)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        match = _PHASES.search(line)
        if match:
            out: dict[str, float] = {"events": float(match.group(1)), "rounds": float(match.group(2))}
            if match.group(3) is not None:
                out["transactions"] = float(match.group(3))
            for item in match.group(4).split(","):
                name, _, value = item.strip().rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    continue
            return out
    return None


async def _count_rows(s: Settings, *tables: str) -> dict[str, int | None]:
    conn = await asyncpg.connect(s.postgres_dsn.reveal(), server_settings={"search_path": s.postgres_schema})
    try:
        out: dict[str, int | None] = {}
        for table in tables:
            try:
                out[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
            except asyncpg.PostgresError:
                out[table] = None
        return out
    finally:
        await conn.close()


async def faust_floor_part(stack: BenchStack, ds: Dataset, partitions: int, timeout_s: float,
                           per_event: bool = True) -> dict[str, Any]:
    """The do-nothing agent on the lifecycle records: consuming in take_events batches as the SLA
    monitor does (the headline floor, the framework under the SLA monitor), and (unless
    `per_event` is False) once more iterating the stream per event."""
    records = lifecycle_records(ds)
    styles: dict[str, Any] = {}
    for style in ("take", "iterate") if per_event else ("take",):
        s = part_settings(stack, f"floor{style}", partitions)
        await prepare_part(s, schema=False)
        await produce_records(s, s.topics.lifecycle, records)
        styles[style] = await _floor_run(stack, s, len(records), style, timeout_s)
    figures = dict(styles["take"])
    figures["style"] = "stream.take_events(1000, within=0.2), nothing done with the batch (as the SLA monitor consumes)"
    figures["per_event_agent"] = styles.get("iterate", "not run (--quick)")
    return figures


async def _floor_run(stack: BenchStack, s: Settings, count: int, style: str, timeout_s: float) -> dict[str, Any]:
    report = stack.home / f"report-{s.instance_id}.json"
    datadir = stack.home / f"faust-{s.instance_id}"
    started = time.time()
    proc = Proc.module(f"faust-floor-{style}", "services.bench.workers", [
        "faust-floor", "--input", s.topics.lifecycle, "--count", str(count), "--report", str(report),
        "--group", f"{s.instance_id}-floor", "--datadir", str(datadir), "--style", style,
    ], service_env(s), stack.home / "logs")
    try:
        worker = await wait_report(report, proc, timeout_s)
        if worker is None:
            raise PartSkipped(f"faust floor ({style}): no report within {timeout_s:.0f}s; "
                              f"log {proc.log_file}:\n{proc.tail(8)}")
        # The clock starts when the agent got its first event (or first batch), which is not counted.
        first = 1 if style == "iterate" else min(count, 1000)
        return {
            "records": count,
            "worker": worker,
            "window_s": round(worker["done_at"] - worker["first_at"], 3),
            "events_per_s": window_rate(worker["count"], first, worker["first_at"], worker["done_at"]),
            "clock": "the agent's own wall times of its first and its last event",
            "wall_with_startup_s": round(worker["done_at"] - started, 3),
            "rss_mb": proc.rss_mb(),
            "process_cpu_s": proc.cpu_s(),
        }
    finally:
        proc.stop()


async def sla_monitor_part(stack: BenchStack, ds: Dataset, partitions: int, timeout_s: float) -> dict[str, Any]:
    reason = module_present("services.sla_monitor")
    if reason:
        raise PartSkipped(reason)
    s = part_settings(stack, "sla", partitions)
    await prepare_part(s)
    records = lifecycle_records(ds)
    await produce_records(s, s.topics.lifecycle, records)
    expected = len(records)
    port = free_port()
    started = time.time()
    proc = Proc.module("sla_monitor", "services.sla_monitor", [], service_env(s, sla_monitor=port), stack.home / "logs")
    conn: asyncpg.Connection | None = None
    try:
        first_at = last_at = None
        first_count = done = 0
        deadline = time.monotonic() + timeout_s
        last_progress = time.monotonic()
        while done < expected:
            if time.monotonic() > deadline or not proc.alive() or time.monotonic() - last_progress > 60:
                state = "exited" if not proc.alive() else "still running"
                raise PartSkipped(
                    f"SLA monitor: {done} of {expected} input records committed within {timeout_s:.0f}s ({state}); "
                    f"log {proc.log_file}:\n{proc.tail(8)}")
            if conn is None:
                conn = await _try_connect(s)
            if conn is not None:
                now_done = await _sla_position(conn, s.topics.lifecycle)
                now = time.time()
                if now_done > done:
                    last_progress = time.monotonic()
                    if first_at is None:
                        first_at, first_count = now, now_done
                    done, last_at = now_done, now
            await asyncio.sleep(0.05)
        figures: dict[str, Any] = {
            "records": expected,
            "first_commit_at": first_at,
            "last_commit_at": last_at,
            "first_commit_records": first_count,
            "window_s": round(last_at - first_at, 3) if first_at and last_at else None,
            "events_per_s": window_rate(done, first_count, first_at, last_at),
            "wall_with_startup_s": round((last_at or time.time()) - started, 3),
            "rss_mb": proc.rss_mb(),
            "process_cpu_s": proc.cpu_s(),
            "clock": "the service's committed input position (sla_input_offsets), polled every 50 ms",
        }
        if figures["process_cpu_s"]:
            figures["events_per_process_cpu_s"] = round(expected / figures["process_cpu_s"], 1)
        figures["store"] = await _count_rows(s, "sla_clocks", "sla_emissions")
        return figures
    finally:
        if conn is not None:
            await conn.close()
        proc.stop()


async def _try_connect(s: Settings) -> asyncpg.Connection | None:
    try:
        return await asyncpg.connect(s.postgres_dsn.reveal(), server_settings={"search_path": s.postgres_schema})
    except (OSError, asyncpg.PostgresError):
        return None


async def _sla_position(conn: asyncpg.Connection, topic: str) -> int:
    try:
        value = await conn.fetchval("SELECT coalesce(sum(next_offset), 0) FROM sla_input_offsets WHERE topic = $1", topic)
    except asyncpg.UndefinedTableError:
        return 0
    return int(value or 0)


def figure(part: dict[str, Any]) -> float | None:
    return part.get("events_per_s")


__all__ = ["PartSkipped", "passthrough_part", "faust_peer_part", "lifecycle_part", "faust_floor_part",
           "sla_monitor_part", "module_present", "figure", "rate"]
