"""The `leadflow` command as a user meets it: commands under headings, an example at the end of
every command's help, and a mistake answered with a clear error and a non-zero exit, never a
traceback. Stack-reading commands are pointed at ports where nothing listens."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.cli import COMMANDS, GROUPS, available

REPO = Path(__file__).resolve().parents[3]
NOTHING_LISTENS = {"LEADFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9", "LEADFLOW_POSTGRES_DSN": "postgresql://postgres@127.0.0.1:9/leadflow",
                   "LEADFLOW_INGEST_PORT": "9", "LEADFLOW_HOME": "/nonexistent/leadflow-home"}


def leadflow(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **NOTHING_LISTENS, "COLUMNS": "80", **env})


def test_help_lists_every_available_command_under_its_heading():
    out = leadflow("--help").stdout
    headings = [g for g in GROUPS if f"\n{g}:\n" in out]
    assert headings and headings == [g for g in GROUPS if any(COMMANDS[n].group == g for n in COMMANDS if available(n))]
    for name in COMMANDS:
        assert (f"  {name} " in out) == available(name), name
    assert out.index("Stack:") < out.index("Sending data:") < out.index("History:") < out.index("Benchmark:")


@pytest.mark.parametrize("name", [n for n in COMMANDS if available(n)])
def test_every_command_help_ends_with_an_example(name):
    result = leadflow(name, "--help")
    assert result.returncode == 0, result.stderr
    tail = result.stdout.rstrip().splitlines()[-2:]
    assert tail[0].strip() == "Example:" and tail[1].strip().startswith(("leadflow ", "LEADFLOW_")), tail


BAD_INPUT = [
    ("up", "--bogus"), ("down", "extra-argument"), ("status", "--json", "--bogus"), ("topics",),
    ("demo", "--month", "2026-13"), ("demo", "--month", "2999-01"), ("demo", "--seed", "x"),
    ("send", "/nonexistent.jsonl"), ("keys", "new"), ("keys", "nonsense"),
    ("lead", "nw-202611-0001"), ("lead",), ("funnel", "--as-of", "yesterday"), ("funnel",), ("rebuild",),
    ("replay", "/nonexistent.jsonl"), ("replay", "--until", "tomorrow", "pyproject.toml"),
    ("backtest", "--policy", "pyproject.toml"), ("backtest",),
    ("ingest", "--port", "0"), ("lifecycle", "--bogus"), ("sla-monitor", "--bogus"),
    ("bench", "--events", "5"), ("bench", "--rates", "fast"), ("no-such-command",),
]


@pytest.mark.parametrize("args", BAD_INPUT, ids=[" ".join(a) for a in BAD_INPUT])
def test_a_mistake_is_a_clear_error_never_a_traceback(args):
    result = leadflow(*args)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(("Error:", "leadflow ")), result.stderr


def test_a_bad_setting_names_the_variable():
    result = leadflow("status", LEADFLOW_KAFKA_PORT="nine")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "LEADFLOW_KAFKA_PORT must be a whole number" in result.stderr
