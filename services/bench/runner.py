"""One benchmark run: the dataset, the core, then every Kafka part on the bench's own servers, each
figure measured or set to None with the reason. Whatever happens, every process it started is
stopped and its servers and folder are gone at the end."""
from __future__ import annotations

import asyncio
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from services.bench import parts as P
from services.bench.core import measure_core
from services.bench.dataset import Dataset, build_dataset
from services.bench.environment import BenchStack, describe_machine, postgres_version
from services.bench.procs import Proc
from services.bench.stats import Result

ALL_PARTS: tuple[str, ...] = ("core", "passthrough", "faust_peer", "lifecycle", "faust_floor", "sla_monitor", "latency")
# part -> the headline figures it sets
PART_FIGURES: dict[str, tuple[str, ...]] = {
    "core": ("core_events_per_s",),
    "passthrough": ("passthrough_events_per_s",),
    "faust_peer": ("faust_peer_events_per_s",),
    "lifecycle": ("lifecycle_events_per_s",),
    "faust_floor": ("faust_floor_events_per_s",),
    "sla_monitor": ("sla_monitor_events_per_s",),
    "latency": ("lifecycle_p50_ms", "lifecycle_p99_ms", "sla_p50_ms", "sla_p99_ms", "latency_rate_per_s",
                "pipeline_cpu_us_per_event", "rss_mb.ingest", "rss_mb.lifecycle", "rss_mb.sla_monitor"),
}


@dataclass
class Options:
    events: int
    quick: bool
    parts: tuple[str, ...] = ALL_PARTS
    partitions: int = 6
    seed: int = 7
    core_events: int | None = None        # default: 60k quick / 300k full
    peer_events: int | None = None        # default: min(events, 10k quick / 60k full)
    deadline_s: float | None = None       # --quick: the latency ladder stops before this (from start)
    instances: int = 1                    # lifecycle processes in part 4 (one consumer group)
    core_repeats: int | None = None
    part_timeout_s: float | None = None
    latency: dict[str, Any] = field(default_factory=dict)   # overrides for the latency part

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    @property
    def core_n(self) -> int:
        return self.core_events or (60_000 if self.quick else 300_000)

    @property
    def peer_n(self) -> int:
        """The Faust peer is an order of magnitude slower than the rest: it gets fewer events
        (its measuring window stays as long as the others')."""
        return min(self.events, self.peer_events or (10_000 if self.quick else 60_000))


def _skip_all(result: Result, part: str, reason: str) -> None:
    for key in PART_FIGURES[part]:
        result.skip(key, reason)
    result.parts.setdefault(part, {})["skipped"] = reason


def run(options: Options, stack: BenchStack | None = None, log: Callable[[str], None] = print) -> Result:
    """Run the benchmark. With `stack` None it starts (and removes) its own Kafka and PostgreSQL."""
    started = time.monotonic()
    result = Result(options.mode, options.events)
    owned = stack is None
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(_signo, _frame):
        raise KeyboardInterrupt("SIGTERM")

    if owned:
        try:
            signal.signal(signal.SIGTERM, on_term)
        except ValueError:   # not the main thread
            pass
    try:
        size = max(options.events, options.core_n if "core" in options.parts else 0)
        log(f"generating {size:,} events (seed {options.seed}) ...")
        full = build_dataset(size, seed=options.seed)
        ds = full.head(options.events)
        result.parts["dataset"] = {"events": len(ds.events), "leads": ds.leads, "seed": ds.seed,
                                   "mean_record_bytes": round(ds.payload_bytes, 1),
                                   "generator": "services/bench/traffic.py generate_events, 2000 leads in flight"}
        result.machine = describe_machine()
        if "core" in options.parts:
            _core(options, full, result, log)
        kafka_parts = [p for p in options.parts if p != "core"]
        for part in ALL_PARTS:
            if part not in options.parts:
                _skip_all(result, part, "not selected (--parts)")
        if kafka_parts:
            if stack is None:
                stack = BenchStack.start(log=log)
            result.machine["postgres_version"] = asyncio.run(postgres_version(stack.postgres_dsn))
            asyncio.run(_kafka_parts(options, stack, ds, result, kafka_parts, log, started))
    finally:
        Proc.stop_all()
        if stack is not None:
            try:
                stack.stop() if owned else _remove_home(stack)
            except Exception as exc:  # noqa: BLE001
                log(f"stopping the bench servers: {exc!r}")
        if owned:
            try:
                signal.signal(signal.SIGTERM, previous)
            except ValueError:
                pass
        result.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result.duration_s = time.monotonic() - started
    return result


def _remove_home(stack: BenchStack) -> None:
    import shutil

    shutil.rmtree(stack.home, ignore_errors=True)


def _core(options: Options, ds: Dataset, result: Result, log) -> None:
    n = min(len(ds.messages), options.core_n)
    repeats = options.core_repeats or (3 if options.quick else 5)
    log(f"part 1: the core alone on {n:,} events, best of {repeats} ...")
    try:
        doc = measure_core([m for _k, m in ds.messages[:n]], repeats=repeats)
    except Exception as exc:  # noqa: BLE001
        _skip_all(result, "core", f"core failed: {exc!r}")
        return
    result.parts["core"] = doc
    if not all(doc["identical_output"].values()):
        result.skip("core_events_per_s", f"the core variants disagree: {doc['identical_output']}")
        return
    result.set("core_events_per_s", doc["variants"]["service"]["events_per_cpu_s"])


async def _kafka_parts(options: Options, stack: BenchStack, ds: Dataset, result: Result, parts: list[str], log,
                       started: float) -> None:
    n = len(ds.messages)
    timeout = options.part_timeout_s or max(60.0, n / 500)
    steps = {
        "passthrough": ("part 2: aiokafka passthrough", P.passthrough_part, "passthrough_events_per_s"),
        "faust_peer": ("part 3: Faust peer", P.faust_peer_part, "faust_peer_events_per_s"),
        "lifecycle": ("part 4: lifecycle service end to end", P.lifecycle_part, "lifecycle_events_per_s"),
        "faust_floor": ("part 5: Faust do-nothing agent", P.faust_floor_part, "faust_floor_events_per_s"),
        "sla_monitor": ("part 5: SLA monitor", P.sla_monitor_part, "sla_monitor_events_per_s"),
    }
    for part in parts:
        if part == "latency":
            from services.bench.latency import latency_part

            log("part 6: latency over HTTP at a steady rate, and resident memory ...")
            try:
                await latency_part(options, stack, result, log, started=started)
            except P.PartSkipped as exc:
                _skip_all(result, "latency", str(exc))
            except Exception as exc:  # noqa: BLE001
                _skip_all(result, "latency", f"failed: {exc!r}\n{traceback.format_exc(limit=3)}")
            continue
        label, fn, key = steps[part]
        part_ds = ds.head(options.peer_n) if part == "faust_peer" else ds
        log(f"{label} on {len(part_ds.messages):,} events ...")
        t0 = time.monotonic()
        try:
            if part == "faust_floor":
                figures = await fn(stack, part_ds, options.partitions, timeout, per_event=not options.quick)
            elif part == "lifecycle":
                figures = await fn(stack, part_ds, options.partitions, timeout, instances=options.instances)
            else:
                figures = await fn(stack, part_ds, options.partitions, timeout)
        except P.PartSkipped as exc:
            _skip_all(result, part, str(exc))
            log(f"  skipped: {str(exc).splitlines()[0]}")
            continue
        except Exception as exc:  # noqa: BLE001
            _skip_all(result, part, f"failed: {exc!r}\n{traceback.format_exc(limit=3)}")
            log(f"  failed: {exc!r}")
            continue
        figures["part_wall_s"] = round(time.monotonic() - t0, 1)
        figures["events"] = len(part_ds.messages)
        result.parts[part] = figures
        value = figures.get("events_per_s")
        result.set(key, value, None if value is not None else f"{part}: no rate could be computed")
        log(f"  {value:,.0f} events/s" if value else "  no rate")
