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
