"""The pipeline's CPU per event: CPU seconds of every process over a rung, divided by its events."""
from __future__ import annotations

import io

from rich.console import Console

from services.bench.report import render
from services.bench.stats import PIPELINE_PROCESSES, Result, pipeline_cpu_per_event, validate_document

BEFORE = {"ingest": 1.0, "lifecycle": 2.0, "sla_monitor": 3.0, "kafka": 10.0, "postgres": 5.0, "bench": 7.0}
AFTER = {"ingest": 1.5, "lifecycle": 3.0, "sla_monitor": 3.75, "kafka": 12.0, "postgres": 5.25, "bench": 8.0}


def _machine() -> dict:
    return {"cpu_model": "cpu", "cores": 2, "memory_mb": 1, "python": "3.11", "kafka_version": "4.1.1"}


def test_each_process_and_the_total_in_microseconds_per_event():
    cpu = pipeline_cpu_per_event(BEFORE, AFTER, events=10_000)
    # 0.5 + 1.0 + 0.75 + 2.0 + 0.25 = 4.5 CPU-s over 10,000 events = 450 µs per event
    assert cpu["pipeline_us_per_event"] == 450.0
    assert cpu["us_per_event"] == {"ingest": 50.0, "lifecycle": 100.0, "sla_monitor": 75.0, "kafka": 200.0,
                                   "postgres": 25.0, "bench": 100.0}
    assert cpu["cpu_s"]["kafka"] == 2.0
    assert cpu["unmeasured"] == []
    assert cpu["events"] == 10_000


def test_the_bench_is_reported_but_not_counted():
    without_bench = {k: v for k, v in AFTER.items() if k != "bench"}
    cpu = pipeline_cpu_per_event(BEFORE, {**without_bench, "bench": 1000.0}, events=10_000)
    assert cpu["pipeline_us_per_event"] == 450.0
    assert "bench" not in PIPELINE_PROCESSES


def test_an_unmeasured_process_leaves_the_total_unknown_not_smaller():
    cpu = pipeline_cpu_per_event({**BEFORE, "postgres": None}, AFTER, events=10_000)
    assert cpu["pipeline_us_per_event"] is None
    assert cpu["unmeasured"] == ["postgres"]
    assert cpu["us_per_event"]["kafka"] == 200.0
    # A process absent from both snapshots (the bench used someone else's Kafka) is unmeasured too.
    partial = {k: v for k, v in BEFORE.items() if k != "kafka"}
    assert pipeline_cpu_per_event(partial, AFTER, 10_000)["unmeasured"] == ["kafka"]


def test_no_events_gives_no_figure():
    cpu = pipeline_cpu_per_event(BEFORE, AFTER, events=0)
    assert cpu["pipeline_us_per_event"] is None
    assert all(v is None for v in cpu["us_per_event"].values())


def test_a_counter_that_went_back_counts_as_nothing_spent():
    # A process tree whose backend ended between snapshots can read lower; never a negative cost.
    cpu = pipeline_cpu_per_event({**BEFORE, "postgres": 6.0}, AFTER, events=10_000)
    assert cpu["us_per_event"]["postgres"] == 0.0


def test_headline_is_the_5000_rung_and_every_rate_is_in_the_json():
    r = Result("quick", 30_000, machine=_machine())
    r.set_pipeline_cpu(1000, pipeline_cpu_per_event(BEFORE, AFTER, 5_000))
    assert r.figures["pipeline_cpu_us_per_event"] is None   # 1,000/s is not the headline rate
    r.set_pipeline_cpu(5000, pipeline_cpu_per_event(BEFORE, AFTER, 30_000))
    doc = r.to_json()
    assert doc["pipeline_cpu_us_per_event"] == 150.0
    assert doc["pipeline_cpu_us_per_event_by_rate"] == {"1000": 900.0, "5000": 150.0}
    assert doc["pipeline_cpu_by_rate"]["5000"]["us_per_event"]["kafka"] == round(2.0 / 30_000 * 1e6, 2)
    assert doc["targets"]["pipeline_cpu_us_per_event"] == {"target": "<= 200", "value": 150.0, "met": True}
    assert not [p for p in validate_document(doc) if "pipeline" in p]


def test_an_unmeasured_headline_is_null_with_the_reason():
    r = Result("quick", 30_000, machine=_machine())
    r.set_pipeline_cpu(5000, pipeline_cpu_per_event({**BEFORE, "kafka": None}, AFTER, 30_000))
    doc = r.to_json()
    assert doc["pipeline_cpu_us_per_event"] is None
    assert "kafka" in doc["reasons"]["pipeline_cpu_us_per_event"]
    assert not [p for p in validate_document(doc) if "pipeline" in p]


def test_the_table_prints_the_cpu_per_event_beside_the_latency():
    r = Result("quick", 30_000, machine=_machine())
    r.set_pipeline_cpu(5000, pipeline_cpu_per_event(BEFORE, AFTER, 30_000))
    r.set_pipeline_cpu(1000, pipeline_cpu_per_event(BEFORE, AFTER, 5_000))
    out = io.StringIO()
    render(r.to_json(), Console(file=out, width=200))
    text = out.getvalue()
    assert "pipeline CPU µs/event at 5,000/s" in text
    assert "150" in text and "900 at 1,000/s" in text
    assert "pipeline CPU per event at 5,000/s: 150 µs over 30,000 events" in text
    assert "kafka 66.7" in text
