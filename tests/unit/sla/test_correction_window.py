"""The correction window: a breached clock with no stop can be corrected to met by a late stop
only until `due + correction_window` (clock time); then the breach is final and the clock leaves
the live state; and the policy setting."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla_monitor.domain import PolicyError, SlaEngine, load_policy, parse_policy
from services.sla_monitor.domain.engine import _ClockQueue, replay_outcomes
from services.sla_monitor.domain.policy import DEFAULT_CORRECTION_WINDOW

from .helpers import berlin, drive, transition, z
from .test_engine_state import build_log, drive_all, log_steps
from .test_policy import DEFAULT_TOML

DEFAULT = load_policy()  # the built-in policy: no window, as in contract §4
POLICY = parse_policy('correction_window = "30d"\n', "thirty.toml")  # built-in SLAs, a 30-day window
SHORT = parse_policy('correction_window = "1d"\n', "short.toml")  # built-in SLAs, a 1-day window
CLOCKS_ONLY = parse_policy('correction_window = "30d"\n'
                           "[slas.speed_to_lead]\n[slas.sales_acceptance]\n[slas.contact_attempts]\n"
                           "[slas.closed_loop_feedback]\n")  # no volume windows closing meanwhile
MQL_AT = berlin(2026, 11, 2, 8)  # speed_to_lead due Monday 10:00 Berlin
DUE = berlin(2026, 11, 2, 10)


def mql(at=MQL_AT, lead_id="L1"):
    return transition("lead.marketing_qualified", at, lead_id, stage="new", to="mql")


def contact(at, lead_id="L1"):
    return transition("contact.attempted", at, lead_id)


# --- the policy setting ---------------------------------------------------------------------

def test_by_default_corrections_have_no_time_limit_as_in_the_contract():
    assert DEFAULT.correction_window is None and DEFAULT_CORRECTION_WINDOW is None
    assert "\ncorrection_window" not in DEFAULT_TOML


def test_a_window_is_part_of_the_version():
    policy = parse_policy('correction_window = "7d"\n' + DEFAULT_TOML)
    assert policy.correction_window == timedelta(days=7)
    assert policy.version != DEFAULT.version
    thirty = parse_policy('correction_window = "30d"\n' + DEFAULT_TOML)
    assert parse_policy('correction_window = "4w2d"\n' + DEFAULT_TOML).version == thirty.version  # same 30 days


def test_without_a_window_a_very_late_stop_still_corrects():
    engine = SlaEngine(DEFAULT)
    engine.observe(mql())
    engine.advance(MQL_AT + timedelta(days=400))
    engine.observe(contact(MQL_AT + timedelta(minutes=30)))
    (line,) = [l for l in engine.outcome_lines(MQL_AT + timedelta(days=400)) if l["sla"] == "speed_to_lead"]
    assert (line["outcome"], line.get("corrected")) == ("met", True)


@pytest.mark.parametrize("value", ['"soon"', "30", '""', '"-1d"', "true"])
def test_a_bad_window_names_the_field_and_line(value):
    with pytest.raises(PolicyError) as caught:
        parse_policy(f'description = "x"\ncorrection_window = {value}\n', "p.toml")
    assert (caught.value.field, caught.value.line) == ("correction_window", 2)
    assert "expected a duration" in caught.value.reason


def test_a_window_inside_a_table_is_an_unknown_key():
    with pytest.raises(PolicyError) as caught:
        parse_policy('[slas.speed_to_lead]\ncorrection_window = "1d"\n', "p.toml")
    assert caught.value.field == "slas.speed_to_lead.correction_window"


# --- the engine -----------------------------------------------------------------------------

def test_a_late_stop_within_the_window_still_corrects():
    engine = SlaEngine(POLICY)
    drive(engine, [mql()])
    assert [e.kind for e in engine.advance(DUE + timedelta(seconds=1))] == ["breached"]
    engine.advance(DUE + timedelta(days=30))  # exactly at due + window: not past it
    emissions = engine.observe(contact(berlin(2026, 11, 2, 9, 30)))
    assert [e.kind for e in emissions] == ["corrected"]
    line = engine.outcome_lines(DUE + timedelta(days=31))[0]
    assert (line["outcome"], line.get("corrected"), line["stopped_at"]) == ("met", True, z(berlin(2026, 11, 2, 9, 30)))


@pytest.mark.parametrize("keep_history", [True, False])
def test_past_the_window_the_breach_is_final_and_the_clock_leaves_the_live_state(keep_history):
    engine = SlaEngine(CLOCKS_ONLY, keep_history=keep_history)
    drive(engine, [mql()])
    engine.advance(DUE + timedelta(seconds=1))
    engine.take_changes()
    assert engine.advance(DUE + timedelta(days=30, seconds=1)) == []  # nothing to publish
    assert engine.has_changes
    changes = engine.take_changes()
    [row] = changes.clocks
    assert (row["outcome"], row["final"], row["expired"], row["stopped_at"]) == ("breached", True, True, None)
    assert list(engine.live_clocks()) == [] and engine.snapshot()["clocks"] == []
    assert engine.memory_stats()["leads"] == 0
    assert not engine.has_changes

    # A stop that happened before due but arrives now is ignored for this clock.
    assert engine.observe(contact(berlin(2026, 11, 2, 9, 30))) == []
    assert engine.take_changes().clocks == []
    lines = engine.outcome_lines(DUE + timedelta(days=40))
    if keep_history:  # replay: the line is what it was when the breach became final
        assert [(line["outcome"], line["stopped_at"], "corrected" in line) for line in lines] == [
            ("breached", None, False)]
    else:
        assert lines == []


def test_a_stop_after_due_records_stopped_at_and_the_clock_waits_for_one_in_time_until_the_window_ends():
    engine = SlaEngine(POLICY, keep_history=False)
    drive(engine, [mql()])
    engine.advance(DUE + timedelta(hours=1))
    engine.observe(contact(DUE + timedelta(hours=2)))
    # Contract v2: a stop at or before due may still arrive (a late CRM sync) and decide it.
    assert len(list(engine.live_clocks())) == 1
    [row] = engine.take_changes().clocks
    assert not row["final"] and not row["expired"] and row["stopped_at"] is not None
    engine.advance(DUE + timedelta(days=31))
    [row] = engine.take_changes().clocks  # the window passed: final, with the late stop kept
    assert row["final"] and row["expired"] and row["outcome"] == "breached" and row["stopped_at"] is not None
    assert list(engine.live_clocks()) == [] and engine.memory_stats()["expiry_queue"] == 0


def test_a_zero_window_makes_every_declared_breach_final_at_once():
    policy = parse_policy('correction_window = "0s"\n')
    engine = SlaEngine(policy)
    drive(engine, [mql()])
    assert [e.kind for e in engine.advance(DUE + timedelta(seconds=1))] == ["breached"]
    assert list(engine.live_clocks()) == []
    assert engine.observe(contact(berlin(2026, 11, 2, 9, 30))) == []
    assert engine.outcome_lines(DUE + timedelta(days=1))[0]["outcome"] == "breached"


def test_replay_ignores_a_stop_that_arrives_after_the_window():
    late_contact = contact(berlin(2026, 11, 2, 9, 30))
    in_time = replay_outcomes(POLICY, [mql(), transition("lead.activity", DUE + timedelta(days=29), "L2"),
                                       late_contact])
    assert in_time[0]["outcome"] == "met" and in_time[0]["corrected"]
    too_late = replay_outcomes(POLICY, [mql(), transition("lead.activity", DUE + timedelta(days=31), "L2"),
                                        contact(berlin(2026, 11, 2, 9, 30))])
    assert (too_late[0]["outcome"], too_late[0]["stopped_at"]) == ("breached", None)


def test_other_clocks_of_the_lead_stay_live():
    engine = SlaEngine(POLICY, keep_history=False)
    drive(engine, [mql(), transition("lead.assigned", MQL_AT + timedelta(minutes=5))])
    engine.advance(DUE + timedelta(days=31))  # both breached; speed_to_lead's window passed
    assert [(c.sla, c.outcome) for c in engine.live_clocks()] == [("sales_acceptance", "breached"),
                                                                  ("contact_attempts", None)]
    engine.advance(DUE + timedelta(days=33))  # sales_acceptance (due Wednesday 17:00) expires too
    assert [(c.sla, c.outcome) for c in engine.live_clocks()] == [("contact_attempts", None)]
    engine.observe(transition("contact.connected", DUE + timedelta(days=34)))
    assert list(engine.live_clocks()) == [] and engine.memory_stats()["leads"] == 0


def test_restore_resumes_the_window_and_a_newer_policy_may_shorten_it():
    engine = SlaEngine(POLICY, keep_history=False)
    drive(engine, [mql()])
    engine.advance(DUE + timedelta(days=2))
    stored = json.loads(json.dumps(engine.snapshot()))
    assert stored["clocks"][0]["outcome"] == "breached" and not stored["clocks"][0]["final"]

    same = SlaEngine.restore(POLICY, stored)
    same.advance(DUE + timedelta(days=29))
    assert len(list(same.live_clocks())) == 1
    same.advance(DUE + timedelta(days=30, seconds=1))
    assert list(same.live_clocks()) == []

    shorter = SlaEngine.restore(SHORT, stored)  # the window of the policy it runs under
    shorter.advance(DUE + timedelta(days=2))  # no time passes: the window is checked at the next advance
    assert list(shorter.live_clocks()) == [] and shorter.take_changes().clocks[0]["expired"]


def test_restore_leaves_final_clocks_out_of_the_live_state():
    engine = SlaEngine(POLICY)
    drive(engine, [mql()])
    engine.advance(DUE + timedelta(days=31))
    final_row = engine.take_changes().clocks[0]
    restored = SlaEngine.restore(POLICY, {**engine.snapshot(), "clocks": [final_row]})
    assert list(restored.live_clocks()) == []


def test_the_due_queue_drops_clocks_decided_before_due():
    engine = SlaEngine(POLICY, keep_history=False)
    at = MQL_AT
    for number in range(3000):  # opportunities reported at once: 90-day clocks met immediately
        lead = f"L{number}"
        drive(engine, [transition("opportunity.created", at, lead, stage="sql", to="opportunity"),
                       transition("deal.won", at + timedelta(minutes=1), lead, stage="opportunity", to="customer")])
        at += timedelta(minutes=2)
        engine.take_changes()
    stats = engine.memory_stats()
    assert stats["live_clocks"] == 0 and stats["leads"] == 0
    assert stats["due_queue"] < 2 * _ClockQueue.COMPACT_MIN


# --- properties over random logs ------------------------------------------------------------

HUGE = parse_policy('correction_window = "100000d"\n')  # no breach expires within these logs
QUICK = parse_policy('correction_window = "2h"\n')  # expires often within these logs
WINDOWS = [parse_policy(f'correction_window = "{window}"\n') for window in ("0s", "2h", "1d")]


@given(log_steps, st.integers(0, 60 * 24 * 100))
@settings(max_examples=150, deadline=None)
def test_the_window_changes_only_clocks_whose_stop_came_after_it(steps, extra_minutes):
    """Against an engine that never expires anything (the behaviour before the window), a clock
    both engines started differs only where a breached clock without a stop expired and the other
    engine later saw its stop. (An expired clock or window also no longer holds back a late
    assignment's new clock, nor counts a late lead: the window trades those for bounded memory.)"""
    transitions = build_log(steps)
    lines = {}
    for name, policy in (("short", QUICK), ("never", HUGE)):
        engine = SlaEngine(policy)
        _, latest = drive_all(engine, transitions)
        until = latest + timedelta(minutes=extra_minutes)
        lines[name] = {(line["sla"], line["lead_id"], line["started_at"]): line
                       for line in engine.outcome_lines(until) if line["lead_id"] is not None}
    for key in lines["short"].keys() & lines["never"].keys():
        short, never = lines["short"][key], lines["never"][key]
        if short != never:
            assert (short["outcome"], short["stopped_at"]) == ("breached", None)
            assert never["stopped_at"] is not None and never["outcome"] in ("met", "breached")
            assert {**never, "outcome": "breached", "stopped_at": None, "corrected": None} == {
                **short, "corrected": None}


@given(log_steps, st.data())
@settings(max_examples=150, deadline=None)
def test_persisting_take_changes_and_loading_what_is_not_final_resumes_exactly(steps, data):
    """What the service does: upsert every reported row, load the rows that are not final at
    start. That is exactly the live state, and resuming from it changes nothing."""
    transitions = build_log(steps)
    cut = data.draw(st.integers(0, len(transitions)))
    policy = data.draw(st.sampled_from(WINDOWS))
    whole = SlaEngine(policy)
    _, latest = drive_all(whole, transitions[:cut])
    expected, _ = drive_all(whole, transitions[cut:], latest)

    before = SlaEngine(policy, keep_history=False)
    rows: dict = {}
    for item in transitions[:cut]:
        drive_all(before, [item], before.now)
        for row in before.take_changes().clocks:
            rows[(row["sla"], row["lead_id"], row["start_event_id"])] = row
    loaded = sorted((row for row in rows.values() if not row["final"]), key=lambda r: r["started_at"])
    assert sorted(c.key for c in before.live_clocks()) == sorted(
        (r["sla"], r["lead_id"], r["start_event_id"]) for r in loaded)
    stored = json.loads(json.dumps({**before.snapshot(), "clocks": loaded}))
    resumed = SlaEngine.restore(policy, stored)
    got, _ = drive_all(resumed, transitions[cut:], latest)
    assert [(e.kind, e.key, e.outcome_line()) for e in got] == [(e.kind, e.key, e.outcome_line()) for e in expected]
