"""`leadflow up` / `status` / `down` on a stack of the test's own (own folder, own free ports):
everything answers, a second `up` is harmless, and `down` leaves no process behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from services.stack.process import free_port

REPO = Path(__file__).resolve().parents[2]
LEADFLOW = [sys.executable, "-m", "services.cli"]

pytestmark = pytest.mark.stack


def _processes_under(home: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(home) in cmd:
            found.append(cmd[:200])
    return found


def test_up_twice_status_down_leaves_nothing(tmp_path_factory):
    home = REPO / ".leadflow" / f"stack-test-{os.getpid()}"
    env = {
        **os.environ,
        "LEADFLOW_HOME": str(home),
        "LEADFLOW_KAFKA_PORT": str(free_port()),
        "LEADFLOW_KAFKA_CONTROLLER_PORT": str(free_port()),
        "LEADFLOW_POSTGRES_PORT": str(free_port()),
        "LEADFLOW_PROMETHEUS_PORT": str(free_port()),
        "LEADFLOW_ALERTMANAGER_PORT": str(free_port()),
        "LEADFLOW_TOPIC_PARTITIONS": "2",
    }
    run = lambda *args: subprocess.run([*LEADFLOW, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    try:
        first = run("up")
        assert first.returncode == 0, first.stderr + first.stdout
        assert "Prometheus   up at http://127.0.0.1:" + env["LEADFLOW_PROMETHEUS_PORT"] in first.stdout
        assert "Alertmanager up at http://127.0.0.1:" + env["LEADFLOW_ALERTMANAGER_PORT"] in first.stdout
        second = run("up")
        assert second.returncode == 0, second.stderr + second.stdout
        assert "topics created: none (all exist)" in second.stdout

        status = run("status")
        assert status.returncode == 0, status.stdout
        for name in ("kafka", "postgres", "prometheus", "alertmanager"):
            line = next(l for l in status.stdout.splitlines() if f" {name} " in l)
            assert "yes" in line, line
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert _processes_under(home) == []
    after = run("status")
    assert after.returncode == 1
    subprocess.run(["rm", "-rf", str(home)], check=False)


def test_up_with_three_brokers_replicates_the_topics():
    """`leadflow up --brokers 3`: three KRaft nodes, the topics with replication 3 and
    min.insync.replicas 2; `status` sees the cluster, `down` stops every node."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    home = REPO / ".leadflow" / f"stack-test-3-{os.getpid()}"
    kafka, controller = free_port(), free_port()
    env = {
        **os.environ,
        "LEADFLOW_HOME": str(home),
        "LEADFLOW_KAFKA_PORT": str(kafka),
        "LEADFLOW_KAFKA_CONTROLLER_PORT": str(controller),
        "LEADFLOW_POSTGRES_PORT": str(free_port()),
        "LEADFLOW_PROMETHEUS_PORT": str(free_port()),
        "LEADFLOW_ALERTMANAGER_PORT": str(free_port()),
        "LEADFLOW_TOPIC_PARTITIONS": "2",
    }
    run = lambda *args: subprocess.run([*LEADFLOW, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    bootstrap = ",".join(f"127.0.0.1:{kafka + 100 * i}" for i in range(3))

    async def describe():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            topics = await admin.describe_topics(["leadflow.events", "leadflow.lifecycle"])
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "leadflow.events")])
            return topics, configs
        finally:
            await admin.close()

    try:
        up = run("up", "--brokers", "3")
        assert up.returncode == 0, up.stderr + up.stdout
        assert f"LEADFLOW_KAFKA_BOOTSTRAP={bootstrap}" in up.stdout
        topics, configs = asyncio.run(describe())
        for topic in topics:
            assert [len(p["replicas"]) for p in topic["partitions"]] == [3, 3], topic
        entries = {name: value for name, value, *_ in configs[0].resources[0][4]}
        assert entries["min.insync.replicas"] == "2"
        status = run("status")
        line = next(l for l in status.stdout.splitlines() if " kafka " in l)
        assert "yes" in line, status.stdout
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert _processes_under(home) == []
