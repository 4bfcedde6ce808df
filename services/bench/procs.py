"""The processes a benchmark run starts (services and peers): started in a session of their own,
watched (CPU time, resident memory), and always stopped, even when the run fails."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import psutil


class Proc:
    """One child process; its output goes to `log_file`."""

    _all: list["Proc"] = []

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            self.popen = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, start_new_session=True)
        self.ps = psutil.Process(self.popen.pid)
        self.peak_rss = 0
        Proc._all.append(self)

    @classmethod
    def module(cls, name: str, module: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> "Proc":
        return cls(name, [sys.executable, "-m", module, *args], env, log_dir / f"{name}.log")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss_mb(self) -> float | None:
        """Resident memory now (MB), and the peak of the samples taken so far."""
        try:
            rss = self.ps.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        self.peak_rss = max(self.peak_rss, rss)
        return rss / 2**20

    def cpu_s(self) -> float | None:
        try:
            t = self.ps.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return t.user + t.system

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM its process group, SIGKILL after `timeout`; returns the exit code."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(10)
        # Children it may have left in its group (none expected).
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self in Proc._all:
            Proc._all.remove(self)
        return self.popen.returncode

    @classmethod
    def stop_all(cls) -> None:
        for proc in list(cls._all):
            proc.stop(timeout=10)


class ProcGroup:
    """Several instances of one service (a consumer group sharing the partitions), watched as one:
    memory and CPU summed, alive while any is."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs

    @property
    def log_file(self) -> Path:
        return self.procs[0].log_file

    def alive(self) -> bool:
        return any(p.alive() for p in self.procs)

    def rss_mb(self) -> float | None:
        values = [p.rss_mb() for p in self.procs]
        return sum(v for v in values if v is not None) if any(v is not None for v in values) else None

    def cpu_s(self) -> float | None:
        values = [p.cpu_s() for p in self.procs]
        return sum(v for v in values if v is not None) if any(v is not None for v in values) else None

    def tail(self, lines: int = 20) -> str:
        return self.procs[0].tail(lines)

    def stop(self, timeout: float = 20.0) -> None:
        for p in self.procs:
            p.stop(timeout)


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


async def wait_report(path: Path, proc: Proc, timeout_s: float, interval: float = 0.05) -> dict[str, Any] | None:
    """Wait for a worker's JSON report; None when the worker died or the time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        report = read_report(path)
        if report is not None:
            return report
        if not proc.alive():
            return read_report(path)
        await asyncio.sleep(interval)
    return None
