from __future__ import annotations

import json
import math
import random

import pytest

from services.bench.stats import (
    HEADLINE_KEYS,
    RATIOS,
    SERVICES,
    Result,
    latency_summary,
    percentile,
    rate,
    ratio,
    target_met,
    validate_document,
    window_rate,
)

MACHINE = {"cpu_model": "x", "cores": 2, "memory_mb": 1024, "python": "3.11", "kafka_version": "4.1.1"}


# --- percentiles -----------------------------------------------------------------------------------

def test_percentile_interpolates_between_closest_ranks():
    data = [10, 20, 30, 40]
    assert percentile(data, 0) == 10
    assert percentile(data, 100) == 40
    assert percentile(data, 50) == 25          # rank 1.5
    assert percentile(data, 25) == pytest.approx(17.5)   # rank 0.75
    assert percentile([5], 99) == 5


def test_percentile_ignores_input_order_and_matches_numpy_linear():
    rng = random.Random(3)
    values = [rng.expovariate(1 / 20) for _ in range(1001)]
    shuffled = values[:]
    rng.shuffle(shuffled)
    ordered = sorted(values)
    # n = 1001: rank q/100 * 1000 is a whole number for p50 and p99: an exact order statistic.
    assert percentile(shuffled, 50) == ordered[500]
    assert percentile(shuffled, 99) == ordered[990]


def test_percentile_of_a_hundred_values():
    data = list(range(1, 101))   # 1..100
    assert percentile(data, 99) == pytest.approx(99.01)
    assert percentile(data, 50) == pytest.approx(50.5)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_refuses_bad_q(q):
    with pytest.raises(ValueError):
        percentile([1, 2], q)


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_is_in_milliseconds():
    summary = latency_summary([0.010, 0.020, 0.030])
    assert summary == {"count": 3, "p50_ms": 20.0, "p99_ms": pytest.approx(29.8), "max_ms": 30.0}
    assert latency_summary([]) == {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}


# --- rates and ratios ---------------------------------------------------------------------------------

def test_rate_needs_a_count_and_time():
    assert rate(1000, 2.0) == 500
    assert rate(0, 2.0) is None
    assert rate(10, 0) is None
    assert rate(10, math.inf) is None


def test_window_rate_leaves_out_what_the_first_poll_saw():
    # 10,000 records, 1,000 of them in the first poll at t=100; the last at t=109.
    assert window_rate(10_000, 1_000, 100.0, 109.0) == 1000
    assert window_rate(1_000, 1_000, 100.0, 100.0) is None
    assert window_rate(10, 1, None, 5.0) is None


def test_ratio_only_of_two_measured_numbers():
    assert ratio(30.0, 10.0) == 3.0
    assert ratio(None, 10.0) is None
    assert ratio(10.0, None) is None
    assert ratio(10.0, 0.0) is None


def test_target_comparisons():
    assert target_met(5.0, ">=", 5.0) is True
    assert target_met(4.9, ">=", 5.0) is False
    assert target_met(99.9, "<", 100) is True
    assert target_met(100, "<", 100) is False
    assert target_met(None, "<", 100) is None
    assert target_met(200, "<=", 200) is True
    assert target_met(200.1, "<=", 200) is False
    with pytest.raises(ValueError):
        target_met(1, "==", 1)


# --- the result document -------------------------------------------------------------------------------

def full_result() -> Result:
    r = Result("quick", 1000, machine=dict(MACHINE))
    values = {
        "core_events_per_s": 150_000.0, "passthrough_events_per_s": 40_000.0, "faust_peer_events_per_s": 2_500.0,
        "lifecycle_events_per_s": 20_000.0, "faust_floor_events_per_s": 10_000.0, "sla_monitor_events_per_s": 6_000.0,
        "lifecycle_p50_ms": 20.0, "lifecycle_p99_ms": 80.0, "sla_p50_ms": 120.0, "sla_p99_ms": 300.0,
        "latency_rate_per_s": 5000.0, "pipeline_cpu_us_per_event": 340.0,
    }
    for key, value in values.items():
        r.set(key, value)
    for service, mb in zip(SERVICES, (50.0, 120.0, 450.0)):
        r.set_rss(service, mb)
    return r


def test_document_has_the_issue_keys_and_ratios():
    doc = full_result().to_json()
    assert validate_document(doc) == []
    for key in ("core_events_per_s", "passthrough_events_per_s", "faust_peer_events_per_s", "lifecycle_events_per_s",
                "faust_floor_events_per_s", "sla_monitor_events_per_s", "lifecycle_p99_ms", "sla_p99_ms", "rss_mb",
                "machine"):
        assert key in doc
    assert set(doc["rss_mb"]) == {"ingest", "lifecycle", "sla_monitor"}
    assert doc["ratios"] == {"lifecycle_vs_faust_peer": 8.0, "lifecycle_vs_passthrough": 0.5,
                             "sla_monitor_vs_faust_floor": 0.6}
    assert set(doc["ratios"]) == set(RATIOS)
    json.dumps(doc)   # plain JSON


def test_targets_say_which_are_met():
    targets = full_result().to_json()["targets"]
    assert targets["core_events_per_s"]["met"] is False
    assert targets["lifecycle_vs_faust_peer"]["met"] is True
    assert targets["lifecycle_vs_passthrough"]["met"] is True
    assert targets["sla_monitor_vs_faust_floor"]["met"] is True
    assert targets["lifecycle_p99_ms"]["met"] is True
    assert targets["sla_p99_ms"]["met"] is False
    assert targets["rss_mb.sla_monitor"]["met"] is False
    assert targets["rss_mb.lifecycle"]["met"] is True
    assert targets["pipeline_cpu_us_per_event"]["met"] is False


def test_a_part_that_did_not_run_is_null_with_its_reason_and_no_ratio():
    r = full_result()
    r.skip("lifecycle_events_per_s", "services/lifecycle has no __main__ yet")
    r.set_rss("sla_monitor", None, "the SLA monitor did not start")
    doc = r.to_json()
    assert doc["lifecycle_events_per_s"] is None
    assert doc["reasons"]["lifecycle_events_per_s"] == "services/lifecycle has no __main__ yet"
    assert doc["ratios"]["lifecycle_vs_faust_peer"] is None
    assert doc["ratios"]["lifecycle_vs_passthrough"] is None
    assert doc["targets"]["lifecycle_vs_faust_peer"]["met"] is None
    assert doc["rss_mb"]["sla_monitor"] is None
    assert "rss_mb.sla_monitor" in doc["reasons"]
    assert validate_document(doc) == []


def test_a_fresh_result_is_all_null_and_every_null_needs_a_reason():
    doc = Result("full", 10, machine=dict(MACHINE)).to_json()
    assert all(doc[key] is None for key in HEADLINE_KEYS)
    problems = validate_document(doc)
    assert "core_events_per_s is null without a reason" in problems
    assert "rss_mb.ingest is null without a reason" in problems


def test_setting_a_value_clears_an_earlier_reason_and_none_keeps_one():
    r = Result("quick", 10)
    r.skip("core_events_per_s", "first")
    r.skip("core_events_per_s", "second")
    assert r.reasons["core_events_per_s"] == "first"
    r.set("core_events_per_s", 5.0)
    assert "core_events_per_s" not in r.reasons
    r.set("sla_p99_ms", None, "nothing matched")
    assert r.figures["sla_p99_ms"] is None and r.reasons["sla_p99_ms"] == "nothing matched"
    r.set("sla_p50_ms", float("nan"))
    assert r.figures["sla_p50_ms"] is None and "finite" in r.reasons["sla_p50_ms"]
    with pytest.raises(KeyError):
        r.set("made_up_per_s", 1.0)
    with pytest.raises(KeyError):
        r.set_rss("kafka", 1.0)


def test_validate_document_finds_wrong_shapes():
    doc = full_result().to_json()
    doc["core_events_per_s"] = "fast"
    doc["lifecycle_p99_ms"] = -1
    del doc["sla_p99_ms"]
    doc["machine"] = {"cores": 2}
    problems = validate_document(doc)
    assert "core_events_per_s is not a number: 'fast'" in problems
    assert any(p.startswith("lifecycle_p99_ms is not a non-negative") for p in problems)
    assert "missing key sla_p99_ms" in problems
    assert "machine has no cpu_model" in problems
    assert "machine has no kafka_version" in problems


def test_lifecycle_phases_are_read_from_its_stop_line(tmp_path):
    from services.bench.parts import service_phases

    log = tmp_path / "lifecycle.log"
    log.write_text("2026 INFO started\n2026-11-27 21:14:03,473 INFO leadflow.lifecycle: lifecycle service stopped: "
                   "50000 events stored in 11 rounds; seconds per step: decode 0.77, fetch 0.47, publish_wait 0.00\n")
    assert service_phases(log) == {"events": 50000.0, "rounds": 11.0, "decode": 0.77, "fetch": 0.47,
                                   "publish_wait": 0.0}
    log.write_text("lifecycle service stopped: 50000 events stored in 11 rounds (40 Kafka transactions); "
                   "seconds per step: decode 0.77\n")
    assert service_phases(log) == {"events": 50000.0, "rounds": 11.0, "transactions": 40.0, "decode": 0.77}
    assert service_phases(tmp_path / "missing.log") is None
