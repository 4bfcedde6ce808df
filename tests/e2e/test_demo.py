"""`leadflow demo --once` on a real local stack (Kafka, PostgreSQL, Prometheus, Alertmanager and
the three services): the summary shows every SLA of contract §4 judged, breaches, corrections and
a leadflow alert firing, and its counts are what the event store gives when read back and replayed
with the domain code (live equals replay, contract §4 v2) and what `leadflow report` shows for the
same month."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.common.envelope import parse_event
from services.common.timefmt import parse_rfc3339
from services.lifecycle.domain import run_log
from services.sla_monitor.domain import load_policy, replay_outcomes

pytestmark = pytest.mark.stack

CONTRACT_SLAS = {"speed_to_lead", "sales_acceptance", "contact_attempts", "closed_loop_feedback",
                 "marketing_weekly_volume", "rep_monthly_volume"}


def _stored_events(env: dict[str, str]) -> list[dict]:
    """Every stored event as its envelope, in log order per partition (so per lead)."""
    async def read():
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{env['LEADFLOW_POSTGRES_PORT']}/leadflow")
        try:
            return await conn.fetch("""SELECT event_id, lead_id, type, occurred_at, source, payload::text AS payload
                                       FROM lead_events ORDER BY kafka_partition, kafka_offset""")
        finally:
            await conn.close()

    return [{"event_id": r["event_id"], "lead_id": r["lead_id"], "type": r["type"],
             "occurred_at": r["occurred_at"].astimezone(timezone.utc).isoformat(), "source": r["source"],
             "payload": json.loads(r["payload"])} for r in asyncio.run(read())]


def test_the_summary_shows_every_agreement_kept_and_broken(demo_stack):
    s = demo_stack.summary
    rows = {row["sla"]: row for row in s["slas"]}
    assert CONTRACT_SLAS <= set(rows)
    for sla in CONTRACT_SLAS:
        assert rows[sla]["met"] + rows[sla]["breached"] > 0, f"{sla} has no decided outcome: {rows[sla]}"
    judged = {(w["sla"], w["outcome"]) for w in s["windows"] if w["outcome"] in ("met", "breached")}
    assert {sla for sla, _ in judged} >= {"marketing_weekly_volume", "rep_monthly_volume"}
    assert sum(row["breached"] for row in rows.values()) >= 1
    assert s["corrections"]["total"] >= 1
    firing = [a for a in s["alerts"] if a["state"] == "firing"]
    assert firing and all(a["alertname"].startswith("Leadflow") for a in firing)
    assert s["events"]["kafka"] > 0 and s["events"]["http"] > 0 and s["events"]["late"] > 0
    assert s["worst_breaches"] and s["teams"] and s["reps"]
    campaign = s["campaign"]
    assert campaign["meetings_booked"] >= 1
    [goal] = campaign["judged"]   # seed 004's goal, judged by the monitor as a kind = "volume" SLA
    assert goal["outcome"] == ("met" if campaign["meetings_booked"] >= campaign["goal_meetings"] else "breached")
    assert goal["count"] == campaign["meetings_booked"]
    assert s["next"]["report"] == f"leadflow report --month {s['month']} --format html --out report.html"


def test_the_summary_counts_are_the_event_store_replayed(demo_stack):
    s = demo_stack.summary
    start, end = parse_rfc3339(s["period"]["start"]), parse_rfc3339(s["period"]["end"])
    events = [parse_event(e) for e in _stored_events(demo_stack.env)]
    assert len(events) == s["events"]["sent"]

    transitions = list(run_log(events))
    created = {t.event.lead_id for t in transitions if t.event.type == "lead.created" and start <= t.event.occurred_at < end}
    reached = Counter()
    for stage in {(t.event.lead_id, t.to_contract_json()["to"]) for t in transitions
                  if t.event.lead_id in created and not t.to_contract_json()["ignored"]}:
        reached[stage[1]] += 1
    assert s["funnel"]["created"] == len(created)
    assert {k: v for k, v in s["funnel"]["reached"].items()} == dict(reached)

    outcomes = replay_outcomes(load_policy(s["policy"]), transitions, datetime.now(timezone.utc))
    counted = Counter()
    for line in outcomes:
        begins = parse_rfc3339(line.get("window_start") or line["started_at"])
        if start <= begins < end:
            counted[(line["sla"], line["outcome"])] += 1
    summary = Counter({(row["sla"], outcome): row[outcome] for row in s["slas"]
                       for outcome in ("met", "breached", "cancelled", "open") if row[outcome]})
    assert summary == counted


def test_leadflow_lead_reads_at_80_columns_with_its_clocks(demo_stack):
    lead = demo_stack.summary["worst_breaches"][0]["lead_id"]
    result = demo_stack.leadflow("lead", lead, COLUMNS="80")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "SLA clocks" in result.stdout and "breached" in result.stdout
    as_json = json.loads(demo_stack.leadflow("lead", lead, "--json").stdout)
    assert any(c["outcome"] == "breached" for c in as_json["clocks"])


OUTCOMES = ("met", "breached", "cancelled", "open")


def _decided(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """sla -> outcome -> count, zeros left out (one side lists an outcome with 0, the other not)."""
    return {sla: {o: n for o, n in by.items() if n} for sla, by in counts.items()}


def _report_outcomes(r: dict) -> dict[str, dict[str, int]]:
    """sla -> outcome -> count of the month's clocks and windows, as the report shows them."""
    out = {r[key]["agreement"]["sla"]: {o: r[key]["attainment"]["total"][o] for o in OUTCOMES}
           for key in ("acceptance", "speed_to_lead", "closed_loop")}
    attempts = r["contact_attempts"]   # per segment only: their sum is the SLA's
    out[attempts["agreement"]["sla"]] = {o: sum(g[o] for g in attempts["segments"]) for o in OUTCOMES}
    out[r["handoffs"]["agreement"]["sla"]] = dict(Counter(w["monitor"]["outcome"] for w in r["handoffs"]["weeks"]
                                                          if w["monitor"] is not None))
    out[r["rep_volume"]["agreement"]["sla"]] = dict(Counter(rep["monitor_outcome"] for rep in r["rep_volume"]["reps"]
                                                            if rep["monitor_outcome"] is not None))
    return out


def test_the_summary_counts_equal_leadflow_report_for_the_month(demo_stack):
    """`leadflow report` for the demo's month, as of the summary's time and with the policy the
    monitor ran with, shows the same counts as the summary wherever both show one. Both follow the
    report's counting rules (docs/report.md): a lead belongs to the period it entered a stage in, a
    clock to the period it started in, a volume window to the period it starts in."""
    s = demo_stack.summary
    result = demo_stack.leadflow("report", "--month", s["month"], "--format", "json", "--now", s["as_of"],
                                 "--policy", s["policy"], "--list-limit", "100000")
    assert result.returncode == 0, result.stderr
    r = json.loads(result.stdout)
    assert (r["period"]["start"], r["period"]["end"], r["generated_at"]) == (s["period"]["start"], s["period"]["end"],
                                                                            s["as_of"])
    zone = ZoneInfo(r["period"]["timezone"])

    # Funnel. The report counts entries into each stage in the month (S7), the summary the month's
    # new leads and the stages they ever reached; what both show is the cohort of the leads created
    # (entered `new`) in the month and how many of them became customers.
    cohort = r["volumes"]["conversion"]["lead_to_customer"]["total"]
    assert s["funnel"]["created"] == cohort["leads"] == r["volumes"]["total"]["new"]
    assert s["funnel"]["reached"].get("customer", 0) == cohort["converted"]

    # MQL -> SQL: leads that entered MQL in the month, each once, and how many later entered SQL or
    # beyond by the report's time.
    mql = r["volumes"]["conversion"]["mql_to_sql"]["total"]
    assert (s["mql_to_sql"]["mql"], s["mql_to_sql"]["sql"]) == (mql["leads"], mql["converted"])

    # Per SLA: met, breached, cancelled and open clocks started in the month, and the outcomes of
    # the weekly and monthly volume windows starting in it. The demo's campaign goal (a
    # `kind = "volume"` SLA) has no section of its own in the report: it is compared below with
    # the breached and corrected windows only.
    report = _decided(_report_outcomes(r))
    summary = _decided({row["sla"]: {o: row[o] for o in OUTCOMES} for row in s["slas"]})
    assert {sla: summary.get(sla, {}) for sla in report} == report
    window_slas = {w["sla"] for w in s["windows"]}
    assert {sla: n for sla, n in r["breaches"]["clocks"]["by_sla"].items() if n} == {
        sla: by["breached"] for sla, by in summary.items() if sla not in window_slas and "breached" in by}
    assert r["breaches"]["clocks"]["total"] == sum(row["breached"] for row in s["slas"] if row["sla"] not in window_slas)

    # Volume windows: each week's and each rep's month, its count (the monitor's, and the report's
    # own from the assignments) and outcome.
    weeks = {w["start"]: w for w in r["handoffs"]["weeks"]}
    summary_weeks = {parse_rfc3339(w["window_start"]).astimezone(zone).date().isoformat(): w
                     for w in s["windows"] if w["sla"] == r["handoffs"]["agreement"]["sla"]}
    assert summary_weeks and set(summary_weeks) == {day for day, w in weeks.items() if w["monitor"] is not None}
    for day, w in summary_weeks.items():
        monitor, counted = weeks[day]["monitor"], weeks[day]
        assert (w["count"], w["good_fit"], w["outcome"]) == (monitor["count"], monitor["good_fit"], monitor["outcome"]), day
        assert (w["count"], w["good_fit"]) == (counted["leads"], counted["good_fit"]), day
    reps = {rep["owner"]: (rep["leads"], rep["monitor_outcome"]) for rep in r["rep_volume"]["reps"]}
    assert {w["owner"]: (w["count"], w["outcome"]) for w in s["windows"]
            if w["sla"] == r["rep_volume"]["agreement"]["sla"]} == reps
    # Every breached window starting in the month, the campaign goal's included.
    assert ({(w["sla"], w["owner"], w["window_start"]) for w in s["windows"] if w["outcome"] == "breached"}
            == {(w["sla"], w["owner"], w["window_start"]) for w in r["breaches"]["windows"]})

    # Corrections: each clock whose breach a late event corrected and each window a late lead
    # judged otherwise, counted once per clock or window.
    corrections = r["corrections"]
    assert len(corrections["listed"]) == corrections["total"]
    by_sla = Counter(c["sla"] for c in corrections["listed"]) + Counter(w["sla"] for w in corrections["windows"])
    assert s["corrections"]["by_sla"] == dict(by_sla)
    assert s["corrections"]["total"] == corrections["total"] + len(corrections["windows"])
