"""A whole local stack of the test's own (own folder, own free ports) on which `leadflow demo
--once --json` has streamed last month: the demo test checks its summary, the docs test runs the
documentation's commands against it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.stack.process import free_port

REPO = Path(__file__).resolve().parents[2]
LEADFLOW = [sys.executable, "-m", "services.cli"]
DEMO_TIMEOUT_S = 420


@dataclass(frozen=True)
class DemoStack:
    env: dict[str, str]
    home: Path
    summary: dict[str, Any]
    seconds: float

    def leadflow(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([*LEADFLOW, *args], cwd=REPO, env={**self.env, **env}, capture_output=True,
                              text=True, timeout=timeout)


def stack_env(home: Path) -> dict[str, str]:
    names = ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "POSTGRES_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT",
             "INGEST_PORT", "LIFECYCLE_METRICS_PORT", "SLA_METRICS_PORT")
    ports: set[int] = set()
    while len(ports) < len(names):
        ports.add(free_port())
    env = {**os.environ, "LEADFLOW_HOME": str(home), "LEADFLOW_TOPIC_PARTITIONS": "3", "COLUMNS": "80"}
    env.update({f"LEADFLOW_{name}": str(port) for name, port in zip(names, sorted(ports))})
    for name in ("LEADFLOW_POSTGRES_DSN", "LEADFLOW_KAFKA_BOOTSTRAP", "LEADFLOW_TOPIC_PREFIX", "LEADFLOW_POSTGRES_SCHEMA"):
        env.pop(name, None)
    return env


def start_demo_stack() -> DemoStack:
    import time

    home = REPO / ".leadflow" / f"demo-test-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    env = stack_env(home)
    started = time.monotonic()
    result = subprocess.run([*LEADFLOW, "demo", "--once", "--json"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=DEMO_TIMEOUT_S)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        stop_demo_stack(env, home)
        raise AssertionError(f"leadflow demo --once failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return DemoStack(env=env, home=home, summary=json.loads(result.stdout), seconds=seconds)


def stop_demo_stack(env: dict[str, str], home: Path) -> None:
    subprocess.run([*LEADFLOW, "down"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    shutil.rmtree(home, ignore_errors=True)
