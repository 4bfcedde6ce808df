from __future__ import annotations

import io

from rich.console import Console

from services.bench.latency import stamp
from services.bench.report import render
from services.bench.stats import Result
from services.common.timefmt import parse_rfc3339


def test_stamp_text_and_microseconds_are_the_same_instant():
    for t in (1795813828.4104524, 1795813828.9999996, 1700000000.0, 1795813828.000001):
        text, us = stamp(t)
        parsed = parse_rfc3339(text)
        assert parsed.microsecond == us % 1_000_000
        assert int(parsed.timestamp()) == us // 1_000_000
        assert abs(us / 1e6 - t) <= 1e-6


def test_table_shows_values_ratios_and_what_was_not_measured():
    r = Result("quick", 50_000, machine={"cpu_model": "cpu", "cores": 2, "memory_mb": 1, "python": "3.11",
                                         "kafka_version": "4.1.1"})
    r.set("lifecycle_events_per_s", 20_000)
    r.set("faust_peer_events_per_s", 2_500)
    r.skip("sla_monitor_events_per_s", "services.sla_monitor has no __main__ yet")
    out = io.StringIO()
    render(r.to_json(), Console(file=out, width=160))
    text = out.getvalue()
    assert "20,000" in text and "2,500" in text
    assert "8.00× peer" in text
    assert "sla_monitor_events_per_s: services.sla_monitor has no __main__ yet" in text


def test_service_env_points_at_the_part_and_keeps_only_bench_variables(monkeypatch, tmp_path):
    from services.bench.environment import BenchStack, part_settings, service_env

    monkeypatch.setenv("LEADFLOW_KAFKA_BOOTSTRAP", "elsewhere:9092")
    monkeypatch.setenv("LEADFLOW_BENCH_PROFILE", "/tmp/p.prof")
    stack = BenchStack("127.0.0.1:1234", "postgresql://postgres@127.0.0.1:5/x", tmp_path)
    s = part_settings(stack, "lifecycle", 6)
    env = service_env(s, lifecycle=9999)
    assert env["LEADFLOW_KAFKA_BOOTSTRAP"] == "127.0.0.1:1234"
    assert env["LEADFLOW_POSTGRES_SCHEMA"] == s.postgres_schema
    assert env["LEADFLOW_TOPIC_PREFIX"] == s.topics.prefix
    assert env["LEADFLOW_LIFECYCLE_METRICS_PORT"] == "9999"
    assert env["LEADFLOW_BENCH_PROFILE"] == "/tmp/p.prof"


def test_a_lever_reaches_the_services_only_through_the_bench_prefix(monkeypatch, tmp_path):
    from services.bench.environment import BenchStack, part_settings, service_env

    monkeypatch.setenv("LEADFLOW_LIFECYCLE_ROUND_INTERVAL_MS", "7")        # the caller's own: dropped
    monkeypatch.setenv("LEADFLOW_BENCH_SET_LIFECYCLE_ROUND_INTERVAL_MS", "100")
    monkeypatch.setenv("LEADFLOW_BENCH_SET_", "ignored")                    # no name: not a setting
    stack = BenchStack("127.0.0.1:1234", "postgresql://postgres@127.0.0.1:5/x", tmp_path)
    env = service_env(part_settings(stack, "latency", 6))
    assert env["LEADFLOW_LIFECYCLE_ROUND_INTERVAL_MS"] == "100"
    assert "LEADFLOW_" not in env
