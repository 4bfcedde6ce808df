"""Contract §5 `leadflow replay`: --emit transitions lines, input errors, and the command itself."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from services.cli import main

DATA = Path(__file__).resolve().parent / "data"
LEADFLOW = Path(sys.executable).parent / "leadflow"


def run(*args: str):
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


def test_transitions_one_line_per_applied_event_with_duplicates_and_ignored():
    # Blank line skipped; e5 repeated -> version null, duplicate; e27 (mql after sal) backward;
    # e28 (accepted after rejected) not_allowed; L5's first event creates it at new (from new).
    result = run(str(DATA / "sla_week.jsonl"), "--emit", "transitions")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == (DATA / "sla_week.transitions.jsonl").read_text("utf-8").splitlines()


def test_installed_command_prints_the_same_transitions():
    command = [str(LEADFLOW)] if LEADFLOW.exists() else [sys.executable, "-m", "services.cli"]
    result = subprocess.run([*command, "replay", str(DATA / "sla_week.jsonl"), "--emit=transitions"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (DATA / "sla_week.transitions.jsonl").read_text("utf-8")


def test_until_cuts_transitions_too():
    result = run(str(DATA / "sla_week.jsonl"), "--emit", "transitions", "--until", "2026-11-02T09:00:00Z")
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == ["e1", "e2", "e3", "e4", "e6", "e7"]


def test_invalid_event_names_line_and_field_and_exits_2():
    result = run(str(DATA / "bad_line.jsonl"))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{DATA / 'bad_line.jsonl'}:3: payload.score: must be an integer, got string" in result.stderr


def test_bad_json_names_the_line_and_exits_2():
    result = run(str(DATA / "bad_json.jsonl"), "--emit", "transitions")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "bad_json.jsonl:2: not valid JSON" in result.stderr


def test_bad_until_exits_2():
    result = run(str(DATA / "sla_week.jsonl"), "--until", "tomorrow")
    assert result.exit_code == 2
    assert "--until: must be an RFC 3339 timestamp" in result.stderr


def test_bad_policy_names_file_line_and_field(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[slas.speed_to_lead]\ndue = "soon"\n')
    result = run(str(DATA / "sla_week.jsonl"), "--policy", str(policy))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f'{policy}:2: slas.speed_to_lead.due: expected a duration like "1h", got "soon"' in result.stderr


def test_missing_file_and_unknown_emit_are_usage_errors():
    assert run(str(DATA / "nope.jsonl")).exit_code == 2
    assert run(str(DATA / "sla_week.jsonl"), "--emit", "everything").exit_code == 2


def test_empty_file_prints_nothing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    for emit in ("outcomes", "transitions"):
        result = run(str(empty), "--emit", emit)
        assert (result.exit_code, result.stdout) == (0, "")


def test_replay_is_listed_in_leadflow_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "replay" in result.output
