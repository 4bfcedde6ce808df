"""The three leadflow services as background processes of the local stack (for `leadflow demo`
and `leadflow up --services`), each with a pid file and a log under settings.home/services."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from services.common.config import Settings
from services.stack.process import (
    StackError, port_answers, read_pid, start_detached, stop_pid, tail, wait_until,
)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port_attr: str  # the Settings attribute holding the port it answers on


SERVICES = (
    ServiceSpec("ingest", "services.ingest", "ingest_port"),
    ServiceSpec("lifecycle", "services.lifecycle", "lifecycle_metrics_port"),
    ServiceSpec("sla_monitor", "services.sla_monitor", "sla_metrics_port"),
)


class ServiceProcesses:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.home / "services"

    def _pid_file(self, spec: ServiceSpec) -> Path:
        return self.dir / f"{spec.name}.pid"

    def log_file(self, spec: ServiceSpec) -> Path:
        return self.dir / f"{spec.name}.log"

    def start(self, env: dict[str, str] | None = None, log=print, timeout: float = 60.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for spec in SERVICES:
            port = getattr(self.settings, spec.port_attr)
            if read_pid(self._pid_file(spec)) is not None and port_answers("127.0.0.1", port):
                log(f"{spec.name:<12} already running on 127.0.0.1:{port}")
                continue
            if port_answers("127.0.0.1", port):
                raise StackError(f"{spec.name}: port 127.0.0.1:{port} is in use by another program.")
            start_detached(spec.name, [sys.executable, "-m", spec.module], self.log_file(spec),
                           self._pid_file(spec), env={**os.environ, **(env or {})})
        for spec in SERVICES:
            port = getattr(self.settings, spec.port_attr)
            pid_file = self._pid_file(spec)
            ok = wait_until(lambda: port_answers("127.0.0.1", port) or read_pid(pid_file) is None, timeout)
            if not ok or read_pid(pid_file) is None:
                raise StackError(f"{spec.name}: did not start. Log:\n{tail(self.log_file(spec))}")
            log(f"{spec.name:<12} up on http://127.0.0.1:{port}")

    def stop(self, log=print) -> None:
        for spec in reversed(SERVICES):
            if self._pid_file(spec).exists():
                log(f"{spec.name:<12} {'stopped' if stop_pid(self._pid_file(spec)) else 'was not running'}")
