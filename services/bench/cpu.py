"""Where the CPU goes while the whole pipeline runs: CPU seconds of every process of the latency
part (the three services, Kafka, PostgreSQL with its backends, the bench itself) over a window,
as a share of one core. On a machine where all of them share a few cores, this says whether a
latency figure is the code's or the machine's."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import psutil

from services.stack.process import read_pid


def _tree_cpu_s(pid: int | None) -> float | None:
    """CPU seconds of a process and its children (a Postgres server and its backends): the live
    ones, and those that ended and were waited for (a backend of a closed connection), which the
    kernel adds to the parent's children times."""
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue   # a backend that ended in between: its time is lost, not guessed
        total += t.user + t.system + t.children_user + t.children_system
    return total


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """Named sources of CPU seconds; `shares(before, after, wall_s)` gives each one's share of a
    core over a window (1.0 = one core busy the whole time)."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], float | None]] = {}

    def add(self, name: str, source: Callable[[], float | None]) -> None:
        self.sources[name] = source

    def add_stack(self, stack) -> None:
        """Kafka and PostgreSQL when the bench started them (not when it uses someone else's)."""
        if stack.kafka is not None:
            self.add("kafka", lambda: _tree_cpu_s(read_pid(stack.kafka.pid_file)))
        if stack.postgres is not None:
            data = stack.postgres.home / "data"
            self.add("postgres", lambda: _tree_cpu_s(postmaster_pid(data)))
        me = psutil.Process()   # the bench process alone: the services are its children
        self.add("bench", lambda: sum(me.cpu_times()[:2]))

    def snapshot(self) -> dict[str, float | None]:
        return {name: source() for name, source in self.sources.items()}

    @staticmethod
    def shares(before: dict[str, float | None], after: dict[str, float | None], wall_s: float) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, start in before.items():
            end = after.get(name)
            out[name] = None if start is None or end is None or wall_s <= 0 else round((end - start) / wall_s, 3)
        known = [v for v in out.values() if v is not None]
        out["total"] = round(sum(known), 3)
        out["cores"] = os.cpu_count()
        return out
