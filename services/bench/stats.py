"""The benchmark's arithmetic and its result document: pure functions, no I/O (unit-tested).

Every figure of `leadflow bench` is either a number that was measured in this run or `None` with
the reason it could not be measured (`Result.skip`); ratios are computed only from two measured
numbers, never from a default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

# The keys every result document has (None when not measured, with the reason in "reasons").
HEADLINE_KEYS: tuple[str, ...] = (
    "core_events_per_s",
    "passthrough_events_per_s",
    "faust_peer_events_per_s",
    "lifecycle_events_per_s",
    "faust_floor_events_per_s",
    "sla_monitor_events_per_s",
    "lifecycle_p50_ms",
    "lifecycle_p99_ms",
    "sla_p50_ms",
    "sla_p99_ms",
    "latency_rate_per_s",
    "pipeline_cpu_us_per_event",
)
SERVICES: tuple[str, ...] = ("ingest", "lifecycle", "sla_monitor")

# name -> (numerator key, denominator key, target: the ratio must be at least this)
RATIOS: dict[str, tuple[str, str, float]] = {
    "lifecycle_vs_faust_peer": ("lifecycle_events_per_s", "faust_peer_events_per_s", 3.0),
    "lifecycle_vs_passthrough": ("lifecycle_events_per_s", "passthrough_events_per_s", 0.5),
    "sla_monitor_vs_faust_floor": ("sla_monitor_events_per_s", "faust_floor_events_per_s", 0.5),
}

# The absolute targets: key -> (comparison, bound)
TARGETS: dict[str, tuple[str, float]] = {
    "core_events_per_s": (">=", 200_000.0),
    "lifecycle_p99_ms": ("<", 100.0),
    "sla_p99_ms": ("<", 250.0),
    "latency_rate_per_s": (">=", 5_000.0),
    "pipeline_cpu_us_per_event": ("<=", 200.0),
}
# What the pipeline is, for its CPU per event: the three services and the servers they use. The
# bench process (load generator and readers) is measured beside it, not counted in it.
PIPELINE_PROCESSES: tuple[str, ...] = ("ingest", "lifecycle", "sla_monitor", "kafka", "postgres")
# The rate whose CPU per event is the headline figure.
PIPELINE_CPU_HEADLINE_RATE = 5_000
RSS_TARGET_MB = 400.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's
    default, "linear"): rank q/100 * (n - 1) in the sorted values."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    data = sorted(values)
    rank = q / 100 * (len(data) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    frac = rank - lo
    return data[lo] + (data[hi] - data[lo]) * frac


def latency_summary(latencies_s: Iterable[float]) -> dict[str, float | int | None]:
    """p50/p99/max in milliseconds and the sample count of latencies given in seconds."""
    values = [x * 1000.0 for x in latencies_s]
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
    }


def rate(count: int, seconds: float) -> float | None:
    """Events per second, or None when nothing (or no time) was measured."""
    if count <= 0 or seconds <= 0 or not math.isfinite(seconds):
        return None
    return count / seconds


def window_rate(total: int, first_seen: int, t_first: float | None, t_last: float | None) -> float | None:
    """Throughput over the window between the first and the last record seen on an output.

    The clock starts when the first records appear (so start-up, group joins and recovery are
    left out), and the records seen at that first moment are not counted: the rate is the
    records that arrived after the clock started over the time they took.
    """
    if t_first is None or t_last is None or total <= first_seen:
        return None
    return rate(total - first_seen, t_last - t_first)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0 or numerator < 0:
        return None
    return numerator / denominator


def target_met(value: float | None, comparison: str, bound: float) -> bool | None:
    if value is None:
        return None
    if comparison == ">=":
        return value >= bound
    if comparison == "<":
        return value < bound
    if comparison == "<=":
        return value <= bound
    raise ValueError(f"unknown comparison {comparison!r}")


def pipeline_cpu_per_event(before: Mapping[str, float | None], after: Mapping[str, float | None],
                           events: int) -> dict[str, Any]:
    """CPU microseconds per event of every process over a window in which `events` went through
    the pipeline, from two snapshots of CPU seconds (`CpuMeter.snapshot`).

    The total is the sum over `PIPELINE_PROCESSES` and is None (with the processes that were not
    measured under `unmeasured`) when any of them has no figure: a part of the pipeline is never
    guessed as zero. Other processes (the bench) are reported, not added."""
    cpu_s: dict[str, float | None] = {}
    for name in dict.fromkeys([*PIPELINE_PROCESSES, *before]):
        start, end = before.get(name), after.get(name)
        cpu_s[name] = None if start is None or end is None else max(0.0, end - start)
    per_event = {name: (None if v is None or events <= 0 else round(v / events * 1e6, 2)) for name, v in cpu_s.items()}
    unmeasured = [name for name in PIPELINE_PROCESSES if per_event[name] is None]
    total = None if unmeasured or events <= 0 else round(sum(cpu_s[n] for n in PIPELINE_PROCESSES) / events * 1e6, 2)
    return {
        "events": events,
        "cpu_s": {name: _round(v, 3) for name, v in cpu_s.items()},
        "us_per_event": per_event,
        "pipeline_us_per_event": total,
        "unmeasured": unmeasured,
    }


@dataclass
class Result:
    """What one `leadflow bench` run measured. `figures` holds the headline numbers (None until
    measured), `reasons` why a figure is None, `parts` the details of each part."""

    mode: str
    events: int
    machine: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float | None] = field(default_factory=lambda: {k: None for k in HEADLINE_KEYS})
    rss_mb: dict[str, float | None] = field(default_factory=lambda: {s: None for s in SERVICES})
    reasons: dict[str, str] = field(default_factory=dict)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_s: float | None = None
    # offered rate (events/s) -> `pipeline_cpu_per_event` of the rung at that rate
    pipeline_cpu: dict[int, dict[str, Any]] = field(default_factory=dict)

    def set(self, key: str, value: float | None, reason: str | None = None) -> None:
        if key not in self.figures:
            raise KeyError(f"unknown figure {key!r}")
        if value is None:
            self.skip(key, reason or "not measured")
            return
        if not math.isfinite(value):
            self.skip(key, f"not a finite number ({value})")
            return
        self.figures[key] = float(value)
        self.reasons.pop(key, None)

    def skip(self, key: str, reason: str) -> None:
        """Record why `key` (a figure, or `rss_mb.<service>`) has no value; keeps an earlier reason."""
        if key in self.figures:
            self.figures[key] = None
        elif key.startswith("rss_mb."):
            self.rss_mb[key.split(".", 1)[1]] = None
        self.reasons.setdefault(key, reason)

    def set_rss(self, service: str, mb: float | None, reason: str | None = None) -> None:
        if service not in self.rss_mb:
            raise KeyError(f"unknown service {service!r}")
        if mb is None:
            self.skip(f"rss_mb.{service}", reason or "not measured")
            return
        self.rss_mb[service] = round(float(mb), 1)
        self.reasons.pop(f"rss_mb.{service}", None)

    def set_pipeline_cpu(self, rate: int, breakdown: Mapping[str, Any]) -> None:
        """The pipeline's CPU per event measured at `rate`; the one at the headline rate is
        `pipeline_cpu_us_per_event`."""
        self.pipeline_cpu[int(rate)] = dict(breakdown)
        if int(rate) == PIPELINE_CPU_HEADLINE_RATE:
            missing = ", ".join(breakdown.get("unmeasured") or []) or "no events"
            self.set("pipeline_cpu_us_per_event", breakdown.get("pipeline_us_per_event"),
                     f"the CPU of {missing} was not measured at {rate:,} events/s")

    def ratios(self) -> dict[str, float | None]:
        return {name: _round(ratio(self.figures[a], self.figures[b]), 3) for name, (a, b, _t) in RATIOS.items()}

    def targets(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key, (cmp, bound) in TARGETS.items():
            out[key] = {"target": f"{cmp} {bound:g}", "value": _round(self.figures[key], 3),
                        "met": target_met(self.figures[key], cmp, bound)}
        ratios = self.ratios()
        for name, (_a, _b, bound) in RATIOS.items():
            out[name] = {"target": f">= {bound:g}", "value": ratios[name], "met": target_met(ratios[name], ">=", bound)}
        for service, mb in self.rss_mb.items():
            out[f"rss_mb.{service}"] = {"target": f"< {RSS_TARGET_MB:g}", "value": mb,
                                        "met": target_met(mb, "<", RSS_TARGET_MB)}
        return out

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schema": "leadflow-bench/1", "mode": self.mode, "events": self.events}
        for key in HEADLINE_KEYS:
            doc[key] = _round(self.figures[key], 3)
        doc["pipeline_cpu_us_per_event_by_rate"] = {
            str(r): b.get("pipeline_us_per_event") for r, b in sorted(self.pipeline_cpu.items())}
        doc["pipeline_cpu_by_rate"] = {str(r): b for r, b in sorted(self.pipeline_cpu.items())}
        doc["rss_mb"] = dict(self.rss_mb)
        doc["ratios"] = self.ratios()
        doc["targets"] = self.targets()
        doc["reasons"] = dict(sorted(self.reasons.items()))
        doc["machine"] = dict(self.machine)
        doc["duration_s"] = _round(self.duration_s, 1)
        doc["parts"] = self.parts
        return doc


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def validate_document(doc: Mapping[str, Any]) -> list[str]:
    """Problems with a result document's shape (empty when it is fine): the keys the issue asks
    for, numbers or null, and a reason for every null headline figure."""
    problems: list[str] = []
    for key in HEADLINE_KEYS:
        if key not in doc:
            problems.append(f"missing key {key}")
            continue
        value = doc[key]
        if value is None:
            if key not in doc.get("reasons", {}):
                problems.append(f"{key} is null without a reason")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{key} is not a number: {value!r}")
        elif value < 0 or not math.isfinite(value):
            problems.append(f"{key} is not a non-negative finite number: {value!r}")
    rss = doc.get("rss_mb")
    if not isinstance(rss, Mapping):
        problems.append("rss_mb is not an object")
    else:
        for service in SERVICES:
            if service not in rss:
                problems.append(f"rss_mb has no {service}")
            elif rss[service] is None and f"rss_mb.{service}" not in doc.get("reasons", {}):
                problems.append(f"rss_mb.{service} is null without a reason")
    machine = doc.get("machine")
    if not isinstance(machine, Mapping):
        problems.append("machine is not an object")
    else:
        for key in ("cpu_model", "cores", "memory_mb", "python", "kafka_version"):
            if key not in machine:
                problems.append(f"machine has no {key}")
    for key in ("ratios", "targets", "reasons"):
        if not isinstance(doc.get(key), Mapping):
            problems.append(f"{key} is not an object")
    return problems
