"""The whole pipeline under faults (tests/faults/pipeline_harness.py): SIGKILLs of every service,
a broker and a PostgreSQL restart, poison records on the internal topics, two instances of ingest
and lifecycle, one of them killed; then 0 lost, 0 duplicated, 0 out of order, 0 outcome
mismatches against `leadflow replay`, and no breach page for a clock met in time.

`make test` runs the short form (about 8,000 events, 6 faults). `make test-faults` sets
LEADFLOW_FAULTS=full: 100,000 events with 12 faults on one broker, then a run on a three-broker
cluster (replication 3, min.insync.replicas 2) whose partition leaders' broker is SIGKILLed.
LEADFLOW_FAULTS_SEED replays a run.
"""
from __future__ import annotations

import json
import os
import random
import time

import pytest

from tests.conftest import REPO, create_test_topics_and_schema, make_test_settings
from tests.faults.pipeline_harness import RunConfig, closing_line, print_report, run_faults
from tests.faults.stack_control import NodesControl

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SHORT = ["kill ingest", "kill lifecycle", "kill sla_monitor", "poison events", "poison lifecycle",
         "restart postgres"]
FULL = ["kill ingest", "kill ingest", "kill lifecycle", "kill lifecycle", "kill sla_monitor", "kill sla_monitor",
        "restart kafka", "restart postgres", "poison events", "poison lifecycle", "kill ingest", "kill lifecycle"]
CLUSTER = ["kill leader broker", "kill lifecycle", "kill sla_monitor"]


async def test_pipeline_under_faults(stack, request):
    mode = os.environ.get("LEADFLOW_FAULTS", "short")
    if mode not in ("short", "full", "cluster"):
        raise ValueError(f"LEADFLOW_FAULTS must be short, full or cluster, got {mode!r}")
    full = mode == "full"
    seed = int(os.environ.get("LEADFLOW_FAULTS_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"\nLEADFLOW_FAULTS_SEED={seed}")
    runs = []
    control = NodesControl([stack.kafka] if stack.kafka else [], stack.postgres)
    if mode == "full":
        runs.append((RunConfig("1 broker", 100_000, 200, FULL, seed), await create_test_topics_and_schema(make_test_settings(stack)), control))
    elif mode == "short":
        runs.append((RunConfig("1 broker, short", 8_000, 40, SHORT, seed), await create_test_topics_and_schema(make_test_settings(stack)),
                     control))
    if mode in ("full", "cluster"):   # cluster: the three-broker run alone, shorter (to work on it)
        cluster = request.getfixturevalue("kafka_cluster")
        on_cluster = make_test_settings(stack).with_changes(
            kafka_bootstrap=cluster.bootstrap, topic_replication=3, topic_min_insync_replicas=2)
        events, duration = (20_000, 60) if full else (6_000, 40)
        runs.append((RunConfig("3 brokers", events, duration, CLUSTER, seed + 1), await create_test_topics_and_schema(on_cluster),
                     NodesControl(cluster.nodes, stack.postgres)))
    reports = []
    # Logs and the accepted events stay after the run (in the checkout's ignored data folder).
    base = REPO / ".leadflow" / "faults" / f"{time.strftime('%Y%m%dT%H%M%S')}-{seed}"
    print(f"logs: {base}")
    try:
        for config, run_settings, run_control in runs:
            workdir = base / config.name.replace(" ", "-").replace(",", "")
            reports.append(await run_faults(run_settings, run_control, config, workdir))
    finally:
        print_report(reports)   # what ran, also when a later run failed
    line = closing_line(reports)
    out = REPO / ".leadflow" / f"faults-report-{mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seed": seed, "runs": [r.to_json() for r in reports], "line": line}, indent=2))
    print(line)
    for r in reports:
        assert r.passed, json.dumps(r.to_json(), indent=2, default=str)[:6000]
    assert sum(r.result.accepted for r in reports) >= (100_000 if full else 5_000)
    assert sum(len(r.faults) for r in reports) >= (10 if full else 3)
