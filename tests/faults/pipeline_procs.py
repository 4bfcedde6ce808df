"""The three services as child processes of the fault suite: started with the run's settings,
killed with SIGKILL, restarted; a watchdog restarts one that exits by itself (and counts it), as a
supervisor in production would."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.common.config import Settings, settings_env
from services.stack.process import free_port, port_answers

REPO = Path(__file__).resolve().parents[2]


class ServiceProc:
    def __init__(self, name: str, module: str, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.module, self.port, self.env = name, module, port, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0
        self.unplanned_exits: list[int] = []
        self.expect_exit = False

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", self.module], cwd=REPO, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.expect_exit = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def answers(self) -> bool:
        return self.alive and port_answers("127.0.0.1", self.port)

    def kill(self) -> None:
        self.expect_exit = True
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def terminate(self, timeout: float = 60) -> int | None:
        self.expect_exit = True
        if not self.alive:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _base_env(settings: Settings, **changes) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(settings_env(settings.with_changes(**changes)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Pipeline:
    """Two ingest instances (HTTP and inbound consumer), two lifecycle instances, one SLA monitor
    (a single writer by design: a second one would only wait as a standby)."""

    def __init__(self, settings: Settings, policy: Path, log_dir: Path, instances: int = 2) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.ingest: list[ServiceProc] = []
        self.lifecycle: list[ServiceProc] = []
        for i in range(instances):
            port = free_port()
            env = _base_env(settings, ingest_port=port, instance_id=f"ingest-{i}")
            self.ingest.append(ServiceProc(f"ingest-{i}", "services.ingest", port, env, log_dir))
            port = free_port()
            env = _base_env(settings, lifecycle_metrics_port=port, instance_id=f"lifecycle-{i}")
            env.update(LEADFLOW_LIFECYCLE_SESSION_TIMEOUT_MS="6000", LEADFLOW_LIFECYCLE_HEARTBEAT_INTERVAL_MS="1000",
                       LEADFLOW_LIFECYCLE_FENCED_BACKOFF_S="3")
            self.lifecycle.append(ServiceProc(f"lifecycle-{i}", "services.lifecycle", port, env, log_dir))
        port = free_port()
        env = _base_env(settings, sla_metrics_port=port, sla_policy_file=str(policy), instance_id="sla-0")
        env.update(LEADFLOW_SLA_METRICS_HOST="127.0.0.1", LEADFLOW_SLA_TIMER_INTERVAL_S="0.5",
                   LEADFLOW_SLA_SESSION_TIMEOUT_S="6", LEADFLOW_SLA_HEARTBEAT_INTERVAL_S="1",
                   LEADFLOW_SLA_DB_RETRY_S="60")
        self.sla = ServiceProc("sla_monitor", "services.sla_monitor", port, env, log_dir)
        self._watch: asyncio.Task | None = None

    @property
    def all(self) -> list[ServiceProc]:
        return [*self.ingest, *self.lifecycle, self.sla]

    async def start(self, timeout: float = 90) -> None:
        for p in self.all:
            p.start()
        deadline = time.monotonic() + timeout
        while not all(p.answers() for p in self.all):
            dead = [p.name for p in self.all if not p.alive]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"services did not start: {dead or [p.name for p in self.all if not p.answers()]}"
                                   f"\n{self.tails()}")
            await asyncio.sleep(0.2)
        self._watch = asyncio.create_task(self._watchdog())

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for p in self.all:
                if not p.alive and not p.expect_exit:
                    p.unplanned_exits.append(p.proc.returncode)
                    p.start()

    async def stop(self) -> dict[str, int | None]:
        if self._watch is not None:
            self._watch.cancel()
        codes = {}
        for p in [*self.ingest, *self.lifecycle, self.sla]:
            codes[p.name] = p.terminate()
        return codes

    def kill_all(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for p in self.all:
            p.kill()

    def tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.log_text().splitlines()[-lines:]) for p in self.all)
