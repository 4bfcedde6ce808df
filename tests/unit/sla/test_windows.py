"""Volume windows: marketing_weekly_volume (ISO weeks, fit share) and rep_monthly_volume."""
from __future__ import annotations

from datetime import timedelta

from services.sla_monitor.domain import SlaEngine, load_policy, parse_policy

from .helpers import berlin, drive, transition, z

WEEKLY = "marketing_weekly_volume"
MONTHLY = "rep_monthly_volume"
MONDAY = berlin(2026, 11, 2)  # 00:00 local: a week boundary
NEXT_MONDAY = berlin(2026, 11, 9)


def assignments(start, count, good=0, owner="ana", prefix="W", team="emea", segment="smb", step=timedelta(minutes=10)):
    """`count` distinct leads assigned from `start` on, the first `good` of them with fit good."""
    return [
        transition("lead.assigned", start + i * step, f"{prefix}{i}", owner=owner, team=team,
                   fit="good" if i < good else "poor", segment=segment)
        for i in range(count)
    ]


def window_lines(engine, sla, until):
    return [line for line in engine.outcome_lines(until) if line["sla"] == sla]


def run(items, until, policy=None):
    engine = SlaEngine(policy or load_policy())
    drive(engine, items)
    return engine, engine.advance(until)


def test_fifty_leads_half_good_fit_is_met():
    engine, _ = run([transition("lead.activity", MONDAY, "X")] + assignments(MONDAY + timedelta(hours=9), 50, good=25),
                    NEXT_MONDAY)
    assert window_lines(engine, WEEKLY, NEXT_MONDAY) == [{
        "sla": WEEKLY, "lead_id": None, "scope": {}, "outcome": "met",
        "started_at": z(MONDAY), "due_at": z(NEXT_MONDAY), "stopped_at": None,
        "window_start": "2026-11-01T23:00:00Z", "window_end": "2026-11-08T23:00:00Z",
        "count": 50, "target": 50, "fit_share": 0.5,
    }]


def test_fit_share_below_half_is_breached():
    engine, _ = run([transition("lead.activity", MONDAY, "X")] + assignments(MONDAY + timedelta(hours=9), 50, good=24),
                    NEXT_MONDAY)
    line = window_lines(engine, WEEKLY, NEXT_MONDAY)[0]
    assert (line["outcome"], line["fit_share"]) == ("breached", 0.48)


def test_too_few_leads_is_breached_even_all_good():
    engine, _ = run([transition("lead.activity", MONDAY, "X")] + assignments(MONDAY + timedelta(hours=9), 49, good=49),
                    NEXT_MONDAY)
    line = window_lines(engine, WEEKLY, NEXT_MONDAY)[0]
    assert (line["outcome"], line["count"], line["fit_share"]) == ("breached", 49, 1.0)


def test_a_lead_counts_once_with_its_fit_at_the_first_assignment():
    items = [transition("lead.activity", MONDAY, "X"),
             transition("lead.assigned", MONDAY + timedelta(hours=10), "L1", fit="good"),
             transition("lead.assigned", MONDAY + timedelta(hours=11), "L1", fit="poor", owner="bo"),
             transition("lead.assigned", MONDAY + timedelta(hours=12), "L2", fit="poor")]
    engine, _ = run(items, NEXT_MONDAY)
    line = window_lines(engine, WEEKLY, NEXT_MONDAY)[0]
    assert (line["count"], line["fit_share"]) == (2, 0.5)


def test_week_without_leads_has_null_fit_share():
    engine, _ = run([transition("lead.activity", MONDAY, "X")], NEXT_MONDAY)
    line = window_lines(engine, WEEKLY, NEXT_MONDAY)[0]
    assert (line["outcome"], line["count"], line["fit_share"]) == ("breached", 0, None)


def test_window_is_judged_once_clock_time_reaches_its_end():
    engine = SlaEngine(load_policy())
    drive(engine, [transition("lead.activity", MONDAY, "X")])
    assert engine.advance(NEXT_MONDAY - timedelta(seconds=1)) == []
    emissions = engine.advance(NEXT_MONDAY)
    assert [(e.kind, e.sla) for e in emissions] == [("window_closed", WEEKLY)]
    assert emissions[0].key == (WEEKLY, "", "2026-11-01T23:00:00Z")


def test_the_week_of_the_first_event_is_not_judged_unless_it_starts_there():
    tuesday = MONDAY + timedelta(days=1, hours=10)
    engine, _ = run([transition("lead.activity", tuesday, "X")] + assignments(tuesday, 3), NEXT_MONDAY + timedelta(days=7))
    lines = window_lines(engine, WEEKLY, NEXT_MONDAY + timedelta(days=7))
    assert [line["window_start"] for line in lines] == [z(NEXT_MONDAY)]


def test_a_late_assignment_into_a_judged_week_is_counted_and_the_week_judged_again():
    items = [transition("lead.activity", MONDAY, "X"), transition("lead.activity", NEXT_MONDAY + timedelta(hours=1), "X"),
             transition("lead.assigned", MONDAY + timedelta(hours=10), "L1")]
    engine = SlaEngine(load_policy())
    emissions = drive(engine, items) + engine.advance(NEXT_MONDAY + timedelta(hours=2))
    [line] = window_lines(engine, WEEKLY, NEXT_MONDAY + timedelta(hours=2))
    assert (line["count"], line["outcome"]) == (1, "breached")  # 1 of 50: same outcome, new count
    assert [e.kind for e in emissions if e.window is not None and e.sla == WEEKLY] == ["window_closed", "window_rejudged"]
    assert "corrected" not in line


def test_weeks_follow_local_midnight_across_spring_forward():
    monday = berlin(2026, 3, 23)
    engine, _ = run([transition("lead.activity", monday, "X")], berlin(2026, 4, 6))
    lines = window_lines(engine, WEEKLY, berlin(2026, 4, 6))
    assert [(line["window_start"], line["window_end"]) for line in lines] == [
        ("2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z"),  # 167 hours: the clocks went forward
        ("2026-03-29T22:00:00Z", "2026-04-05T22:00:00Z"),
    ]


def test_a_scoped_weekly_sla_counts_only_its_segment():
    policy = parse_policy(
        '[slas.enterprise_weekly]\nkind = "marketing_weekly_volume"\nscope = { segment = "enterprise" }\ntarget = 2\n'
    )
    items = [transition("lead.activity", MONDAY, "X"),
             *assignments(MONDAY + timedelta(hours=9), 2, good=2, prefix="E", segment="enterprise"),
             *assignments(MONDAY + timedelta(hours=9), 5, prefix="S")]
    engine, _ = run(items, NEXT_MONDAY, policy)
    line = window_lines(engine, "enterprise_weekly", NEXT_MONDAY)[0]
    assert (line["outcome"], line["count"], line["fit_share"]) == ("met", 2, 1.0)


# --- rep_monthly_volume ---------------------------------------------------------------------

NOVEMBER = berlin(2026, 11, 1)
DECEMBER = berlin(2026, 12, 1)


def test_owner_with_150_leads_in_the_month_is_met_and_owners_without_leads_are_not_judged():
    items = [transition("lead.activity", NOVEMBER, "X"),
             *assignments(NOVEMBER + timedelta(days=1), 150, owner="ana", prefix="A"),
             *assignments(NOVEMBER + timedelta(days=2), 149, owner="bo", prefix="B")]
    engine, emissions = run(items, DECEMBER)
    assert [e.window.owner for e in emissions if e.sla == MONTHLY] == ["ana", "bo"]
    lines = window_lines(engine, MONTHLY, DECEMBER)
    assert lines[0] == {
        "sla": MONTHLY, "lead_id": None, "scope": {"owner": "ana"}, "outcome": "met",
        "started_at": z(NOVEMBER), "due_at": z(DECEMBER), "stopped_at": None,
        "window_start": "2026-10-31T23:00:00Z", "window_end": "2026-11-30T23:00:00Z", "count": 150, "target": 150,
    }
    assert (lines[1]["scope"], lines[1]["outcome"], lines[1]["count"]) == ({"owner": "bo"}, "breached", 149)


def test_a_month_is_judged_per_owner_only_when_it_got_a_lead():
    items = [transition("lead.activity", NOVEMBER, "X"), *assignments(NOVEMBER + timedelta(days=3), 1, owner="ana"),
             *assignments(DECEMBER + timedelta(days=3), 1, owner="bo", prefix="D")]
    engine, _ = run(items, berlin(2027, 1, 1))
    lines = window_lines(engine, MONTHLY, berlin(2027, 1, 1))
    assert [(line["scope"]["owner"], line["window_start"]) for line in lines] == [
        ("ana", "2026-10-31T23:00:00Z"), ("bo", "2026-11-30T23:00:00Z")]


def test_monthly_target_override_per_team():
    policy = parse_policy('[slas.rep_monthly_volume]\n[[slas.rep_monthly_volume.overrides]]\nwhen = { team = "desk" }\ntarget = 2\n')
    items = [transition("lead.activity", NOVEMBER, "X"), *assignments(NOVEMBER + timedelta(days=1), 2, owner="ana", team="desk")]
    engine, _ = run(items, DECEMBER, policy)
    line = window_lines(engine, MONTHLY, DECEMBER)[0]
    assert (line["outcome"], line["target"]) == ("met", 2)


def test_windows_come_after_clocks_sorted_by_window_start():
    items = [transition("lead.activity", NOVEMBER, "X"), *assignments(NOVEMBER + timedelta(days=1), 1)]
    engine, _ = run(items, DECEMBER)
    slas = [line["sla"] for line in engine.outcome_lines(DECEMBER)]
    assert slas[:2] == ["sales_acceptance", "contact_attempts"]
    windows = [line for line in engine.outcome_lines(DECEMBER) if line["lead_id"] is None]
    assert [line["window_start"] for line in windows] == sorted(line["window_start"] for line in windows)
    assert windows[0]["sla"] == MONTHLY  # November starts on a Sunday, before its first ISO week
