"""`leadflow report --week 2026-W46` over a known history (known_history.py) stored through the
lifecycle's and the SLA monitor's own write paths on the real PostgreSQL: every figure of the
JSON checked against values worked out by hand (the arithmetic is in the comments); text,
Markdown and HTML rendered from that same data carry the key figures."""
from __future__ import annotations

import asyncio
import json
import re

import pytest
from click.testing import CliRunner

from services.cli import main as leadflow
from tests.integration.report.history import store_history
from tests.integration.report.known_history import EVENTS, NOW, POLICY, POLICY_TOML

pytestmark = pytest.mark.stack


async def _cli(settings, *args: str):
    env = {"LEADFLOW_POSTGRES_DSN": settings.postgres_dsn.reveal(), "LEADFLOW_POSTGRES_SCHEMA": settings.postgres_schema,
           "LEADFLOW_SLA_POLICY": ""}
    return await asyncio.to_thread(CliRunner().invoke, leadflow, list(args), env=env, catch_exceptions=False)


@pytest.fixture
async def history(settings, tmp_path):
    await store_history(settings, EVENTS, POLICY, NOW)
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY_TOML)
    return settings, policy_file


def _outcomes(clocks, met, breached, cancelled, open_, corrected, attainment):
    return {"clocks": clocks, "met": met, "breached": breached, "cancelled": cancelled, "open": open_,
            "corrected": corrected, "attainment": attainment}


async def test_week_report_json_field_by_field(history, tmp_path):
    settings, policy_file = history
    result = await _cli(settings, "report", "--week", "2026-W46", "--format", "json", "--policy", str(policy_file),
                        "--now", "2026-11-16T12:00:00Z")
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)

    assert r["period"] == {"kind": "week", "label": "2026-W46", "first_day": "2026-11-09", "days": 7,
                           "start": "2026-11-08T23:00:00Z", "end": "2026-11-15T23:00:00Z",
                           "timezone": "Europe/Berlin", "in_progress": False}
    assert r["team"] is None and r["generated_at"] == "2026-11-16T12:00:00Z"
    assert r["policy"]["version"] == POLICY.version

    # S1 handoffs: assigned in W46: L1 (Mon, good); L2 good, L3 poor, L4 good (Tue); L5 poor,
    # L7 good (Wed); L6 good (Thu) -> 7 leads, 5 good, 5/7 = 0.7143 >= 0.5 and 7 >= 4: met.
    s1 = r["handoffs"]
    assert (s1["target"], s1["min_fit_share"], s1["fit"]) == (4, 0.5, "good")
    assert s1["agreement"]["sla"] == "marketing_weekly_volume" and "4 leads" in s1["agreement"]["text"]
    assert s1["weeks"] == [{"week": "2026-W46", "start": "2026-11-09", "leads": 7, "good_fit": 5, "fit_share": 0.7143,
                            "target": 4, "met": True, "monitor": {"outcome": "met", "count": 7, "good_fit": 5}}]
    assert [(d["day"][-2:], d["leads"], d["good_fit"]) for d in s1["days"]] == [
        ("09", 1, 1), ("10", 3, 2), ("11", 2, 1), ("12", 1, 1), ("13", 0, 0), ("14", 0, 0), ("15", 0, 0)]
    assert s1["total"] == {"leads": 7, "good_fit": 5, "fit_share": 0.7143}

    # S2 acceptance (due: close of the 2nd business day after the start day):
    # L1 ana met (accepted Tue); L2 ben breached (due Thu 16:00, recycled Fri: a cancel after due
    # changes nothing); L4 ana cancelled (disqualified Thu 12:00, before due); L5 ben met by a
    # late acceptance (Fri 15:00 <= due Fri 16:00): corrected; L3 cy met (rejected); L7 cy met;
    # L6 cy open (due Mon 11-16 16:00). Total 7: met 4, breached 1 -> 4/5 = 0.8.
    s2 = r["acceptance"]
    assert s2["business_days"] == 2 and s2["agreement"]["sla"] == "sales_acceptance"
    assert s2["attainment"]["total"] == _outcomes(7, 4, 1, 1, 1, 1, 0.8)
    east, west = s2["attainment"]["teams"]
    # east: L1, L2, L4, L5 -> met 2, breached 1 -> 2/3 = 0.6667; ana 1/1; ben 1/2.
    assert {k: v for k, v in east.items() if k != "reps"} == {"team": "east", **_outcomes(4, 2, 1, 1, 0, 1, 0.6667)}
    assert east["reps"] == [{"owner": "ana", **_outcomes(2, 1, 0, 1, 0, 0, 1.0)},
                            {"owner": "ben", **_outcomes(2, 1, 1, 0, 0, 1, 0.5)}]
    # west: L3, L7 met, L6 open -> 2/2 = 1.0.
    assert {k: v for k, v in west.items() if k != "reps"} == {"team": "west", **_outcomes(3, 2, 0, 0, 1, 0, 1.0)}
    assert west["reps"] == [{"owner": "cy", **_outcomes(3, 2, 0, 0, 1, 0, 1.0)}]
    # Due within the next business day as of Mon 11-16 12:00: before Tue 11-17 17:00 Berlin.
    assert s2["due_soon"]["horizon"] == "2026-11-17T16:00:00Z"
    assert [(c["lead_id"], c["owner"], c["team"], c["due_at"], c["overdue"]) for c in s2["due_soon"]["clocks"]] == [
        ("L6", "cy", "west", "2026-11-16T16:00:00Z", False)]

    # S3 speed to lead (website MQLs; due 1h of business time, 08:00-16:00 UTC):
    # L1 mql Mon 08:10, contact 08:40: met, 30 min; L2 mql Mon 15:40 (due Tue 08:40), contact Tue
    # 09:00: breached, 20 + 60 = 80 min; L3 mql Tue 07:00 (counts from 08:00), contact 08:30: met,
    # 30 min; L6 mql Thu 08:00, no contact: breached. Owners are those at the contact, else the
    # lead's: east ana (met), ben (breached); west cy (met, breached).
    s3 = r["speed_to_lead"]
    assert s3["due"] == "1h"
    assert s3["attainment"]["total"] == _outcomes(4, 2, 2, 0, 0, 0, 0.5)
    assert [(t["team"], t["attainment"], [(p["owner"], p["met"], p["breached"]) for p in t["reps"]])
            for t in s3["attainment"]["teams"]] == [
        ("east", 0.5, [("ana", 1, 0), ("ben", 0, 1)]), ("west", 0.5, [("cy", 1, 1)])]
    # [1800, 1800, 4800] s: median 1800; p90 at rank 0.9 * 2 = 1.8: 1800 + 0.8 * 3000 = 4200.
    assert s3["first_contact"] == {"channel": "website", "contacted": 3, "median_business_seconds": 1800.0,
                                   "p90_business_seconds": 4200.0}

    # S4 contact attempts (3 required, 4 for enterprise), clocks started at each assignment:
    # enterprise L4: 2 attempts then disqualified no_response -> breached;
    # midmarket L2: 3 attempts then recycled no_response -> met; L7 connected -> cancelled;
    # smb L1 connected -> cancelled; L3, L5, L6 still open.
    s4 = r["contact_attempts"]
    assert s4["required"] == 3
    assert s4["segments"] == [
        {"segment": "enterprise", "required": 4, "required_by_clocks": 4, "clocks": 1, "met": 0, "breached": 1,
         "cancelled": 0, "open": 0, "attainment": 0.0, "attempts_when_decided": 2.0},
        {"segment": "midmarket", "required": 3, "required_by_clocks": 3, "clocks": 2, "met": 1, "breached": 0,
         "cancelled": 1, "open": 0, "attainment": 1.0, "attempts_when_decided": 3.0},
        {"segment": "smb", "required": 3, "required_by_clocks": 3, "clocks": 4, "met": 0, "breached": 0,
         "cancelled": 1, "open": 3, "attainment": None, "attempts_when_decided": None},
    ]

    # S5 rep volume, November through the week's last day (11-15): 15 of 30 days, target 6 ->
    # even pace 6 * 15 / 30 = 3.0. ana L1 (9th), L4 (10th) = 2; ben L2 (10th), L5 (11th) = 2;
    # cy L3 (10th), L7 (11th), L6 (12th) = 3 (on pace). The monitor's November windows are open.
    s5 = r["rep_volume"]
    assert (s5["target"], s5["month"], s5["month_days"], s5["through_day"], s5["days_elapsed"],
            s5["even_pace_to_date"], s5["even_pace_per_day"]) == (6, "2026-11", 30, "2026-11-15", 15, 3.0, 0.2)
    assert s5["reps"] == [
        {"owner": "ana", "team": "east", "leads": 2, "days": [
            {"day": "2026-11-09", "leads": 1, "cumulative": 1}, {"day": "2026-11-10", "leads": 1, "cumulative": 2}],
         "target": 6, "attainment": 0.3333, "even_pace_to_date": 3.0, "on_pace": False, "monitor_outcome": "open"},
        {"owner": "ben", "team": "east", "leads": 2, "days": [
            {"day": "2026-11-10", "leads": 1, "cumulative": 1}, {"day": "2026-11-11", "leads": 1, "cumulative": 2}],
         "target": 6, "attainment": 0.3333, "even_pace_to_date": 3.0, "on_pace": False, "monitor_outcome": "open"},
        {"owner": "cy", "team": "west", "leads": 3, "days": [
            {"day": "2026-11-10", "leads": 1, "cumulative": 1}, {"day": "2026-11-11", "leads": 1, "cumulative": 2},
            {"day": "2026-11-12", "leads": 1, "cumulative": 3}],
         "target": 6, "attainment": 0.5, "even_pace_to_date": 3.0, "on_pace": True, "monitor_outcome": "open"},
    ]

    # S6 closed loop: opportunities L1 (10,000, website/launch) and L7 (20,000, event/webinar);
    # L1 won 8,000, L7 lost -> win rate 1/2. Both fed back in time (met). L0's opportunity (W45,
    # due Nov 9) still has no result at Nov 16: waiting past due.
    s6 = r["closed_loop"]
    assert (s6["due"], s6["opportunities"], s6["won"], s6["lost"], s6["revenue"], s6["pipeline_amount"],
            s6["win_rate"]) == ("7d", 2, 1, 1, 8000.0, 30000.0, 0.5)
    assert s6["by_channel"] == [
        {"channel": "event", "opportunities": 1, "won": 0, "lost": 1, "revenue": 0.0},
        {"channel": "website", "opportunities": 1, "won": 1, "lost": 0, "revenue": 8000.0}]
    assert s6["by_campaign"] == [
        {"campaign": "webinar", "opportunities": 1, "won": 0, "lost": 1, "revenue": 0.0},
        {"campaign": "launch", "opportunities": 1, "won": 1, "lost": 0, "revenue": 8000.0}]
    assert s6["attainment"]["total"] == _outcomes(2, 2, 0, 0, 0, 0, 1.0)
    assert [(c["lead_id"], c["due_at"], c["outcome"]) for c in s6["waiting_past_due"]["clocks"]] == [
        ("L0", "2026-11-09T10:00:00Z", "breached")]

    # S7 entries per day: Mon new L1 L2, mql L1 L2; Tue new L3 L4, iql L4, mql L3 L4, sal L1;
    # Wed new L5 L7, mql L5 L7, sal L7, sql L1; Thu new L6 L8, mql L6 L8, sql L7, opportunity L1 L7;
    # Fri customer L1, sal L5 (the late acceptance counts on the day it happened).
    s7 = r["volumes"]
    assert s7["stages"] == ["new", "iql", "mql", "sal", "sql", "opportunity", "customer"]
    assert [[d[s] for s in s7["stages"]] for d in s7["days"]] == [
        [2, 0, 2, 0, 0, 0, 0], [2, 1, 2, 1, 0, 0, 0], [2, 0, 2, 1, 1, 0, 0], [2, 0, 2, 0, 1, 2, 0],
        [0, 0, 0, 1, 0, 0, 1], [0] * 7, [0] * 7]
    assert s7["total"] == {"new": 8, "iql": 1, "mql": 8, "sal": 3, "sql": 2, "opportunity": 2, "customer": 1}
    assert s7["weeks"] == [{"week": "2026-W46", **s7["total"]}]
    # MQL -> SQL: 8 MQLs (L1-L8), of which L1 and L7 reached SQL: 2/8. Per channel: event L4 L7
    # 1/2; referral L5 L8 0/2; website L1 L2 L3 L6 1/4. Per segment: enterprise L4 0/1; midmarket
    # L2 L7 1/2; smb L1 L3 L5 L6 L8 1/5.
    mql = s7["conversion"]["mql_to_sql"]
    assert mql["total"] == {"leads": 8, "converted": 2, "rate": 0.25}
    assert mql["by_channel"] == [{"channel": "event", "leads": 2, "converted": 1, "rate": 0.5},
                                 {"channel": "referral", "leads": 2, "converted": 0, "rate": 0.0},
                                 {"channel": "website", "leads": 4, "converted": 1, "rate": 0.25}]
    assert mql["by_segment"] == [{"segment": "enterprise", "leads": 1, "converted": 0, "rate": 0.0},
                                 {"segment": "midmarket", "leads": 2, "converted": 1, "rate": 0.5},
                                 {"segment": "smb", "leads": 5, "converted": 1, "rate": 0.2}]
    # Lead -> customer: 8 leads created, L1 won: 1/8; website 1/4, smb 1/5.
    cust = s7["conversion"]["lead_to_customer"]
    assert cust["total"] == {"leads": 8, "converted": 1, "rate": 0.125}
    assert [(c["channel"], c["leads"], c["converted"]) for c in cust["by_channel"]] == [
        ("event", 2, 0), ("referral", 2, 0), ("website", 4, 1)]
    assert [(c["segment"], c["rate"]) for c in cust["by_segment"]] == [("enterprise", 0.0), ("midmarket", 0.0), ("smb", 0.2)]

    # S8: rejections L3 (website, webinar) and L8 (referral, launch), both no_budget: 2, share 1.
    # Content: guide.pdf downloaded by L1 (helpful), L2 (not rated), L6 (not helpful): 3 downloads,
    # 2 rated, 1 helpful -> 0.5; L1 became SQL after it -> 1/3. pricing.pdf: L3, helpful, no SQL.
    s8 = r["marketing_feedback"]
    assert s8["rejections"] == {
        "total": 2, "by_reason": [{"reason": "no_budget", "count": 2, "share": 1.0}],
        "by_channel": [{"reason": "no_budget", "channel": "referral", "count": 1},
                       {"reason": "no_budget", "channel": "website", "count": 1}],
        "by_campaign": [{"reason": "no_budget", "campaign": "launch", "count": 1},
                        {"reason": "no_budget", "campaign": "webinar", "count": 1}]}
    assert s8["content"] == [
        {"asset": "guide.pdf", "downloads": 3, "leads": 3, "rated": 2, "helpful": 1, "helpful_share": 0.5,
         "became_sql": 1, "sql_rate": 0.3333},
        {"asset": "pricing.pdf", "downloads": 1, "leads": 1, "rated": 1, "helpful": 1, "helpful_share": 1.0,
         "became_sql": 0, "sql_rate": 0.0}]

    # Breaches of the week's clocks, by due time: L2 speed (Tue 08:40), L6 speed (Thu 09:00),
    # L2 acceptance (Thu 16:00), L4 attempts (no due time). The week's window was met.
    b = r["breaches"]
    assert b["clocks"]["total"] == 4
    assert b["clocks"]["by_sla"] == {"closed_loop_feedback": 0, "contact_attempts": 1, "sales_acceptance": 1,
                                     "speed_to_lead": 2}
    assert [(c["sla"], c["lead_id"], c["due_at"], c["stopped_at"]) for c in b["clocks"]["listed"]] == [
        ("speed_to_lead", "L2", "2026-11-10T08:40:00Z", "2026-11-10T09:00:00Z"),
        ("speed_to_lead", "L6", "2026-11-12T09:00:00Z", None),
        ("sales_acceptance", "L2", "2026-11-12T16:00:00Z", None),
        ("contact_attempts", "L4", None, "2026-11-12T12:00:00Z")]
    assert b["windows"] == []
    # Corrections: L5's acceptance, breached at Fri 16:00 and corrected by the late stop.
    c = r["corrections"]
    assert c["total"] == 1
    assert [(x["sla"], x["lead_id"], x["outcome"], x["stopped_at"], x["corrected"]) for x in c["listed"]] == [
        ("sales_acceptance", "L5", "met", "2026-11-13T15:00:00Z", True)]
    assert c["windows"] == []   # no late assignment changed a judged week's outcome

    # The same data in every format (rendered from the JSON above, not queried again).
    from services.report.render import render

    text, md, html = render(r, "text"), render(r, "md"), render(r, "html")
    for out in (text, md, html):
        for figure in ("2026-W46", "71.4%", "80.0%", "30m 00s", "1h 10m", "8,000", "no_budget", "guide.pdf",
                       "L5", "L6", "marketing_weekly_volume", "sales_acceptance"):
            assert figure in out, (figure, out[:400])
    assert md.startswith("# ") and "| team |" in md
    assert "<script" in html and "Plotly" in html and "@media print" in html
    # Self-contained: no script, style sheet or image is fetched from anywhere.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", html)
    (tmp_path / "report.html").write_text(html)


async def test_team_filter_keeps_that_team(history):
    settings, policy_file = history
    result = await _cli(settings, "report", "--week", "2026-W46", "--team", "west", "--format", "json",
                        "--policy", str(policy_file), "--now", "2026-11-16T12:00:00Z")
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    # West: L3 (poor), L6 (good), L7 (good) assigned -> 3 leads, 2 good.
    assert r["handoffs"]["total"] == {"leads": 3, "good_fit": 2, "fit_share": 0.6667}
    assert [t["team"] for t in r["acceptance"]["attainment"]["teams"]] == ["west"]
    assert r["acceptance"]["attainment"]["total"] == _outcomes(3, 2, 0, 0, 1, 0, 1.0)
    assert [rep["owner"] for rep in r["rep_volume"]["reps"]] == ["cy"]
    # L0's overdue opportunity has no team: not west's.
    assert r["closed_loop"]["waiting_past_due"]["clocks"] == []


@pytest.mark.parametrize("args, message", [
    (["--week", "2026-46"], "week '2026-46' is not an ISO week like 2026-W46"),
    (["--week", "2026-W54"], "week '2026-W54' does not exist"),
    (["--month", "2026-13"], "month '2026-13' does not exist"),
    (["--month", "nov"], "month 'nov' is not a month like 2026-11"),
    (["--month", "2026-12"], "month 2026-12 has not started yet"),
    (["--week", "2026-W46", "--month", "2026-11"], "give exactly one of --week"),
    (["--week", "2026-W46", "--team", "north"], "team 'north' is unknown (teams with leads: east, west)"),
])
async def test_bad_input_is_one_line_and_exit_2(history, args, message):
    settings, policy_file = history
    result = await _cli(settings, "report", *args, "--policy", str(policy_file), "--now", "2026-11-16T12:00:00Z")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


async def test_an_empty_store_reports_zeros_in_every_format(settings, tmp_path):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY_TOML)
    result = await _cli(settings, "report", "--month", "2026-11", "--format", "json", "--policy", str(policy_file),
                        "--now", "2026-11-16T12:00:00Z")
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["period"]["in_progress"] is True
    # November 2026's Mondays: 2, 9, 16, 23, 30 -> five weeks, nothing assigned.
    assert [w["week"] for w in r["handoffs"]["weeks"]] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]
    assert r["handoffs"]["total"] == {"leads": 0, "good_fit": 0, "fit_share": None}
    assert r["acceptance"]["attainment"]["total"]["clocks"] == 0
    assert r["speed_to_lead"]["first_contact"]["median_business_seconds"] is None
    assert r["rep_volume"]["through_day"] == "2026-11-16" and r["rep_volume"]["reps"] == []
    assert r["volumes"]["total"]["new"] == 0 and len(r["volumes"]["days"]) == 30
    assert r["breaches"]["clocks"]["total"] == 0 and r["corrections"]["total"] == 0
    for fmt, marker in (("text", "S1 Handoffs"), ("md", "## S1 Handoffs"), ("html", "<h2>S1 Handoffs")):
        out = await _cli(settings, "report", "--month", "2026-11", "--format", fmt, "--policy", str(policy_file),
                         "--now", "2026-11-16T12:00:00Z", "--out", str(tmp_path / f"empty.{fmt}"))
        assert out.exit_code == 0, out.output
        assert marker in (tmp_path / f"empty.{fmt}").read_text()
