"""Contract §5 `leadflow replay --emit outcomes`: exact lines for small fixture logs.

The expected files in data/ were written by hand from contract §4 (see the comments in each
test), not produced by the code under test.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
LEADFLOW = Path(sys.executable).parent / "leadflow"


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(LEADFLOW)] if LEADFLOW.exists() else [sys.executable, "-m", "services.cli"]
    return subprocess.run([*command, "replay", *args], capture_output=True, text=True, timeout=120)


def expected(name: str) -> list[str]:
    return (DATA / name).read_text("utf-8").splitlines()


def test_default_policy_outcomes_of_a_week():
    # L1 contacted in time, accepted; L2 (enterprise) never contacted in time, not accepted by
    # Wednesday 17:00, recycled no_response after 7 of 8 attempts; L3 rejected by sales; L4's
    # contact arrives after the breach was declared but happened before due: corrected to met;
    # L6's opportunity is open at --until (defaults to the largest occurred_at).
    result = replay(str(DATA / "sla_week.jsonl"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected("sla_week.outcomes.jsonl")


def test_until_cuts_the_log_and_sets_the_final_clock_time():
    # As of Wednesday 10:00Z: L2's acceptance and attempts are still open, L4's contact is not late.
    result = replay(str(DATA / "sla_week.jsonl"), "--until", "2026-11-04T10:00:00Z", "--emit", "outcomes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected("sla_week.until_2026-11-04T10.outcomes.jsonl")


def test_until_after_the_log_lets_clocks_breach_without_events():
    result = replay(str(DATA / "sla_week.jsonl"), "--until", "2027-02-02T13:30:01Z")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_clock = {(line["sla"], line["lead_id"]): line for line in lines if line["lead_id"] is not None}
    assert by_clock[("closed_loop_feedback", "L6")]["outcome"] == "breached"
    assert by_clock[("contact_attempts", "L1")]["outcome"] == "open"  # decided by events only
    windows = [line for line in lines if line["lead_id"] is None]
    weekly = [line for line in windows if line["sla"] == "marketing_weekly_volume"]
    # ISO weeks from Monday 9 Nov 2026 (the week of the first event started before it) to the
    # last one ending by --until (Monday 1 Feb 2027 00:00 Berlin).
    assert weekly[0]["window_start"] == "2026-11-08T23:00:00Z"
    assert weekly[-1]["window_end"] == "2027-01-31T23:00:00Z"
    assert len(weekly) == 12
    assert all(line["outcome"] == "breached" and line["count"] == 0 for line in weekly)
    # Owners only got leads in November, which started before the first event: not judged.
    assert [line for line in windows if line["sla"] == "rep_monthly_volume"] == []


def test_policy_file_with_small_targets_judges_weeks_and_owner_months():
    # First event at 1 Dec 00:00 Berlin: December is judged per owner (ana 2, bo 2, cy 1 of 2);
    # the week of 30 Nov started before the first event; the week of 7 Dec has 3 leads, 2 good.
    result = replay(str(DATA / "windows_december.jsonl"), "--policy", str(DATA / "small_targets.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected("windows_december.outcomes.jsonl")


@pytest.mark.parametrize("name", ["sla_week.outcomes.jsonl", "windows_december.outcomes.jsonl"])
def test_outcome_lines_have_the_contract_shape(name):
    base = ["sla", "lead_id", "scope", "outcome", "started_at", "due_at", "stopped_at"]
    for text in expected(name):
        line = json.loads(text)
        assert list(line)[:7] == base
        assert line["outcome"] in ("met", "breached", "cancelled", "open")
        if line["lead_id"] is None:
            assert list(line)[7:11] == ["window_start", "window_end", "count", "target"]
        for key in ("started_at", "due_at", "stopped_at"):
            assert line[key] is None or (len(line[key]) == 20 and line[key].endswith("Z"))
