"""`leadflow bench` on the test stack: the core and the passthrough part on a few thousand events.

Performance is measured by the bench, not asserted here: the test checks the document's shape, that
the measured numbers are positive, that the parts not run are null with a reason, and that the run
leaves no process and no folder behind."""
from __future__ import annotations

import json

import psutil
import pytest
from click.testing import CliRunner

from services.bench.environment import BenchStack
from services.bench.runner import Options, run
from services.bench.stats import HEADLINE_KEYS, validate_document

pytestmark = pytest.mark.stack


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_core_and_passthrough_on_the_test_stack(stack, tmp_path):
    bench_stack = BenchStack.external(stack.kafka_bootstrap, stack.postgres_dsn, stack.home)
    before = _children()
    result = run(Options(events=3000, quick=True, parts=("core", "passthrough"), core_events=3000, core_repeats=1,
                         partitions=3), stack=bench_stack, log=lambda _msg: None)
    doc = result.to_json()
    assert validate_document(doc) == []
    for key in HEADLINE_KEYS:
        assert key in doc
    assert doc["core_events_per_s"] > 0
    assert doc["passthrough_events_per_s"] > 0
    core = doc["parts"]["core"]
    assert core["identical_output"] == {"service": True, "codec": True, "batch": True}
    assert all(v["events_per_cpu_s"] > 0 for v in core["variants"].values())
    passthrough = doc["parts"]["passthrough"]
    assert passthrough["records_seen"] == 3000
    # Everything not run is null, with the reason.
    for key in ("faust_peer_events_per_s", "lifecycle_events_per_s", "sla_monitor_events_per_s", "lifecycle_p99_ms",
                "sla_p99_ms"):
        assert doc[key] is None
        assert "not selected" in doc["reasons"][key]
    assert doc["ratios"]["lifecycle_vs_passthrough"] is None
    assert set(doc["rss_mb"]) == {"ingest", "lifecycle", "sla_monitor"}
    for key in ("cpu_model", "cores", "memory_mb", "python", "kafka_version"):
        assert doc["machine"][key]
    json.dumps(doc)
    # Its work folder is gone (the test stack's own folder stays), and no process is left.
    assert not bench_stack.home.exists()
    assert stack.home.exists()
    assert _children() <= before


def test_cli_writes_the_json_and_refuses_unknown_parts(tmp_path):
    from services.cli import main

    runner = CliRunner()
    refused = runner.invoke(main, ["bench", "--parts", "core,warp"])
    assert refused.exit_code == 2
    assert "unknown part" in refused.output
    refused = runner.invoke(main, ["bench", "--parts", "latency", "--rates", "1000,fast"])
    assert refused.exit_code == 2
    assert "expected whole events/s" in refused.output
    out = tmp_path / "bench.json"
    done = runner.invoke(main, ["bench", "--quick", "--events", "1000", "--parts", "core", "--json", str(out)])
    assert done.exit_code == 0, done.output
    doc = json.loads(out.read_text())
    assert validate_document(doc) == []
    assert doc["core_events_per_s"] > 0
    assert doc["passthrough_events_per_s"] is None
