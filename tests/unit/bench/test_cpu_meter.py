from __future__ import annotations

import os
from pathlib import Path

from services.bench.cpu import CpuMeter, _tree_cpu_s, postmaster_pid


def test_shares_are_cpu_seconds_per_wall_second_and_unknown_stays_unknown():
    before = {"kafka": 10.0, "lifecycle": 2.0, "postgres": None}
    after = {"kafka": 13.0, "lifecycle": 2.5, "postgres": 4.0}
    shares = CpuMeter.shares(before, after, wall_s=5.0)
    assert shares["kafka"] == 0.6
    assert shares["lifecycle"] == 0.1
    assert shares["postgres"] is None          # no start value: not guessed
    assert shares["total"] == 0.7
    assert shares["cores"] == os.cpu_count()


def test_a_zero_window_gives_no_share():
    assert CpuMeter.shares({"a": 1.0}, {"a": 2.0}, wall_s=0)["a"] is None


def test_sources_are_read_at_each_snapshot():
    ticks = iter([1.0, 4.0])
    meter = CpuMeter()
    meter.add("x", lambda: next(ticks))
    assert CpuMeter.shares(meter.snapshot(), meter.snapshot(), 3.0)["x"] == 1.0


def test_own_process_tree_and_missing_processes():
    spent = _tree_cpu_s(os.getpid())
    assert spent is not None and spent > 0
    assert _tree_cpu_s(None) is None


def test_postmaster_pid_is_the_first_line_of_postmaster_pid(tmp_path: Path):
    (tmp_path / "postmaster.pid").write_text("4242\n/var/lib/postgresql/data\n")
    assert postmaster_pid(tmp_path) == 4242
    assert postmaster_pid(tmp_path / "absent") is None
