"""`leadflow backtest` on a small history stored in the lifecycle's event store (lead_events, as
the lifecycle service writes it): attainment before and after a proposed policy, and the leads
whose outcome changes, worked out by hand from contract §4."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest

from services.backtest import log_order
from services.common.envelope import Event
from services.lifecycle.domain import run_log
from services.lifecycle.store import prepare_store

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[3]


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def history() -> list[Event]:
    """Monday 2026-11-02 in Berlin (UTC+1): business hours 08:00-16:00Z. Four website leads become
    MQLs at 09:00Z; contacted after 30, 90 and 150 minutes, and never. W4 is also assigned."""
    events: list[Event] = []
    for lead in ("W1", "W2", "W3", "W4"):
        events.append(Event(f"{lead}-c", lead, "lead.created", z("2026-11-02T08:50:00"), "website",
                            {"channel": "website", "segment": "smb"}))
        events.append(Event(f"{lead}-m", lead, "lead.marketing_qualified", z("2026-11-02T09:00:00"), "hubspot",
                            {"fit": "good"}))
    events.append(Event("W4-as", "W4", "lead.assigned", z("2026-11-02T09:05:00"), "salesforce",
                        {"owner": "rep-7", "team": "sales-emea"}))
    for lead, at in (("W1", "09:30"), ("W2", "10:30"), ("W3", "11:30")):
        events.append(Event(f"{lead}-a", lead, "contact.attempted", z(f"2026-11-02T{at}:00"), "dialer",
                            {"channel": "phone"}))
    # An unrelated lead from another channel: no speed_to_lead clock under either policy.
    events.append(Event("E1-c", "E1", "lead.created", z("2026-11-02T08:55:00"), "hubspot",
                        {"channel": "event", "segment": "smb"}))
    events.append(Event("E1-m", "E1", "lead.marketing_qualified", z("2026-11-02T09:10:00"), "hubspot", {}))
    return events


async def store_history(settings, events: list[Event]) -> None:
    """The rows the lifecycle service stores for this log (one partition, offsets in log order)."""
    await prepare_store(settings)   # as the lifecycle service does: tables, and its roles' grants
    conn = await asyncpg.connect(settings.postgres_dsn.reveal(),
                                 server_settings={"search_path": f'"{settings.postgres_schema}"'})
    try:
        rows = []
        for offset, t in enumerate(run_log(events)):
            e = t.event
            rows.append((t.lead_id, t.version, t.event_id, e.type, e.occurred_at, e.source, json.dumps(e.payload),
                         t.from_stage, t.to_stage, t.ignored, t.channel, t.segment, t.fit, t.owner, t.team,
                         settings.topics.events, 0, offset))
        # Stored in two transactions, the second one's rows first in the table.
        for chunk, recorded in ((rows[8:], "2026-11-02T12:00:01Z"), (rows[:8], "2026-11-02T12:00:00Z")):
            await conn.executemany(
                """INSERT INTO lead_events (lead_id, version, event_id, type, occurred_at, source, payload,
                       from_stage, to_stage, ignored, channel, segment, fit, owner, team,
                       kafka_topic, kafka_partition, kafka_offset, recorded_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                           $19::text::timestamptz)""",
                [row + (recorded,) for row in chunk])
    finally:
        await conn.close()


def backtest(settings, *args: str, policy_env: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ,
               LEADFLOW_POSTGRES_DSN=settings.postgres_dsn.reveal(),
               LEADFLOW_POSTGRES_SCHEMA=settings.postgres_schema,
               LEADFLOW_SLA_POLICY=policy_env,
               COLUMNS="160")
    return subprocess.run([sys.executable, "-m", "services.cli", "backtest", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


TWO_HOURS = '[slas.speed_to_lead]\ndue = "2h"\n\n[slas.sales_acceptance]\n\n[slas.contact_attempts]\n'


async def test_backtest_two_hours_instead_of_one(settings, tmp_path):
    await store_history(settings, history())
    proposed = tmp_path / "two-hours.toml"
    proposed.write_text(TWO_HOURS, encoding="utf-8")

    result = backtest(settings, "--policy", str(proposed), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["events"] == 14 and report["leads"] == 5
    assert report["to"] == "2026-11-02T11:30:00Z"
    assert report["current"]["policy"] == "built-in policy"
    summary = {(row["sla"], row["team"]): row for row in report["summary"]}
    stl = summary[("speed_to_lead", "sales")]
    # 1h: W1 met (30 min); W2 (90), W3 (150) and W4 (never) breached. 2h: W2 met as well.
    assert stl["before"] == {"met": 1, "breached": 3, "cancelled": 0, "open": 0, "attainment": 0.25}
    assert stl["after"] == {"met": 2, "breached": 2, "cancelled": 0, "open": 0, "attainment": 0.5}
    # W4's handoff clocks belong to its team and are undecided under both policies.
    assert summary[("sales_acceptance", "sales-emea")]["before"]["open"] == 1
    assert summary[("contact_attempts", "sales-emea")]["after"]["open"] == 1
    # The proposed file has no closed_loop_feedback / volume SLAs; nothing of theirs was started.
    assert [c["lead_id"] for c in report["changes"]] == ["W2"]
    change = report["changes"][0]
    assert change["sla"] == "speed_to_lead" and change["started_at"] == "2026-11-02T09:00:00Z"
    assert change["before"] == {"outcome": "breached", "due_at": "2026-11-02T10:00:00Z",
                                "stopped_at": "2026-11-02T10:30:00Z"}
    assert change["after"] == {"outcome": "met", "due_at": "2026-11-02T11:00:00Z",
                               "stopped_at": "2026-11-02T10:30:00Z"}

    # The table: attainment before and after, and the lead that changes.
    result = backtest(settings, "--policy", str(proposed))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    row = next(line for line in lines if "speed_to_lead" in line and "25.0%" in line)
    assert "50.0%" in row and "+25.0" in row
    assert any("W2" in line and "breached, due 2026-11-02T10:00:00Z" in line
               and "met, due 2026-11-02T11:00:00Z" in line for line in lines)

    # --to before W2's contact: W2 is breached under 1h and open under 2h.
    result = backtest(settings, "--policy", str(proposed), "--to", "2026-11-02T10:15:00Z", "--json")
    report = json.loads(result.stdout)
    changed = {c["lead_id"]: (c["before"]["outcome"], c["after"]["outcome"]) for c in report["changes"]}
    assert changed == {"W2": ("breached", "open"), "W3": ("breached", "open"), "W4": ("breached", "open")}
    assert report["events"] == 12

    # --from after the MQLs: no clock of this history is compared.
    result = backtest(settings, "--policy", str(proposed), "--from", "2026-11-02T09:01:00Z", "--json")
    report = json.loads(result.stdout)
    assert report["changes"] == [] and [r["sla"] for r in report["summary"]] == ["contact_attempts", "sales_acceptance"]

    # The current policy from LEADFLOW_SLA_POLICY (or --current): the same file on both sides.
    result = backtest(settings, "--policy", str(proposed), "--json", policy_env=str(proposed))
    report = json.loads(result.stdout)
    assert report["current"]["policy"] == str(proposed) and report["changes"] == []


async def test_backtest_refuses_a_bad_policy(settings, tmp_path):
    await store_history(settings, history())
    bad = tmp_path / "bad.toml"
    bad.write_text('[slas.speed_to_lead]\ndue = "2 hours"\n', encoding="utf-8")
    result = backtest(settings, "--policy", str(bad))
    assert result.returncode == 2
    assert f"--policy: {bad}:2: slas.speed_to_lead.due: expected a duration" in result.stderr
    assert result.stdout == ""


def test_log_order_keeps_each_lead_in_version_order():
    rows = [{"lead_id": "A", "version": 2}, {"lead_id": "B", "version": 1}, {"lead_id": "A", "version": 1},
            {"lead_id": "B", "version": 2}, {"lead_id": "A", "version": 3}]
    assert [(r["lead_id"], r["version"]) for r in log_order(rows)] == [
        ("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3)]
