"""Every example policy file that ships (deploy/policy/, docs/policies/) loads, and `leadflow
replay --policy FILE` runs a month of traffic through it: the same CLI a user runs, every SLA of
the file judged or timed at least once."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from services.bench.traffic import generate_events
from services.sla_monitor.domain import load_policy

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "deploy" / "policy").glob("*.toml")) + sorted((REPO / "docs" / "policies").glob("*.toml"))


@pytest.fixture(scope="module")
def november(tmp_path_factory) -> Path:
    """Six weeks of traffic from 1 November 2026 00:00 in Berlin (so November and its weeks,
    days and the campaign span are judged), about 3,000 leads."""
    path = tmp_path_factory.mktemp("traffic") / "events.jsonl"
    first = {"event_id": "first", "lead_id": "L-first", "type": "lead.created", "occurred_at": "2026-10-31T23:00:00Z",
             "source": "website", "payload": {"channel": "website", "segment": "smb"}}
    events = generate_events(30_000, seed=5, start=datetime(2026, 10, 31, 23, tzinfo=timezone.utc),
                             concurrent_leads=400, mean_gap_seconds=120)
    path.write_text("".join(json.dumps(event) + "\n" for event in [first, *events]))
    return path


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_policy_replays_a_month(path, november):
    policy = load_policy(path)
    result = subprocess.run([sys.executable, "-m", "services.cli", "replay", str(november), "--policy", str(path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    per_sla = Counter(line["sla"] for line in lines)
    missing = [rule.name for rule in policy.rules if per_sla[rule.name] == 0]
    assert not missing, f"{path.name}: no outcome line for {missing}"
    assert {line["outcome"] for line in lines} >= {"met", "breached"}


def test_the_seed_agreements_file_names_every_agreement():
    policy = load_policy(REPO / "deploy" / "policy" / "seed-agreements.toml")
    names = {rule.name for rule in policy.rules}
    assert {"marketing_weekly_volume", "sales_acceptance", "speed_to_lead", "contact_attempts", "rep_monthly_volume",
            "closed_loop_feedback", "daily_mql", "trade_fair_meetings", "rep_monthly_pace"} <= names
    assert policy.rule("speed_to_lead").settings_for("website", "enterprise", None, None).starts_on == "sql"
    assert policy.lead_attributes == {"campaign"}
