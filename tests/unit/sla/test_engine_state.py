"""The engine over whole random logs (through the real lifecycle `run_log`): one final outcome
per clock, snapshot/restore resumes exactly, changes are reported for incremental persistence."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.envelope import parse_event
from services.lifecycle.domain import run_log
from services.sla_monitor.domain import SlaEngine, load_policy
from services.sla_monitor.domain.engine import replay_outcomes

from .helpers import berlin, transition

POLICY = load_policy()
START = datetime(2026, 10, 26, 6, 0, tzinfo=timezone.utc)

EVENT_CHOICES = [
    ("lead.created", {"channel": "website", "segment": "smb"}),
    ("lead.created", {"channel": "website", "segment": "enterprise"}),
    ("lead.created", {"channel": "event", "segment": "smb"}),
    ("lead.scored", {"score": 50, "fit": "good"}),
    ("lead.marketing_qualified", {"fit": "good"}),
    ("lead.marketing_qualified", {}),
    ("lead.assigned", {"owner": "ana", "team": "emea"}),
    ("lead.assigned", {"owner": "bo", "team": "us-east"}),
    ("lead.accepted", {}),
    ("lead.rejected", {"reason": "no_fit"}),
    ("contact.attempted", {"channel": "phone"}),
    ("contact.attempted", {"channel": "email"}),
    ("contact.connected", {"channel": "phone"}),
    ("lead.sales_qualified", {}),
    ("opportunity.created", {"opportunity_id": "o1"}),
    ("deal.won", {"revenue": 10}),
    ("deal.lost", {"reason": "price"}),
    ("lead.recycled", {"reason": "no_response"}),
    ("lead.recycled", {"reason": "timing"}),
    ("lead.disqualified", {"reason": "no_response"}),
]

log_steps = st.lists(
    st.tuples(
        st.integers(0, 3),  # lead
        st.integers(0, len(EVENT_CHOICES) - 1),  # what happens
        st.integers(-120, 60 * 30),  # minutes since the previous event (sometimes out of order)
        st.integers(0, 12),  # small chance of repeating an earlier event id
    ),
    min_size=1,
    max_size=60,
)


def build_log(steps):
    events, at = [], START
    for number, (lead, choice, minutes, repeat) in enumerate(steps):
        at += timedelta(minutes=minutes)
        etype, payload = EVENT_CHOICES[choice]
        event_id = f"e{number // 2}" if repeat == 0 and number > 1 else f"e{number}"
        events.append(parse_event({"event_id": event_id, "lead_id": f"L{lead}", "type": etype,
                                   "occurred_at": at.isoformat(), "source": "test", "payload": payload}))
    return list(run_log(events))


def drive_all(engine, transitions, latest=None):
    emissions = []
    for item in transitions:
        at = item.event.occurred_at
        latest = at if latest is None or at > latest else latest
        emissions += engine.advance(latest)
        emissions += engine.observe(item)
    return emissions, latest


@given(log_steps, st.integers(0, 60 * 24 * 100))
@settings(max_examples=200, deadline=None)
def test_every_clock_has_one_final_outcome(steps, extra_minutes):
    transitions = build_log(steps)
    engine = SlaEngine(POLICY)
    emissions, latest = drive_all(engine, transitions)
    until = latest + timedelta(minutes=extra_minutes)
    emissions += engine.advance(until)
    lines = [line for line in engine.outcome_lines(until) if line["lead_id"] is not None]
    started = [e for e in emissions if e.kind == "started"]
    assert len(lines) == len(started) == len({e.key for e in started})
    decisions: dict = {}
    for emission in emissions:
        if emission.clock is not None and emission.kind != "started":
            decisions.setdefault(emission.key, []).append(emission.kind)
    for line, start in zip(lines, started):
        kinds = decisions.get(start.key, [])
        assert line["outcome"] in ("met", "breached", "cancelled", "open")
        # One decision; or a breach, perhaps a late stop recorded, then perhaps a correction
        # (to met or cancelled: the correction's record carries the outcome).
        decided = [kind for kind in kinds if kind != "late_stop"]
        assert decided in ([], ["met"], ["breached"], ["cancelled"], ["breached", "corrected"])
        assert kinds.count("late_stop") <= 1 and (not kinds.count("late_stop") or kinds[0] == "breached")
        corrected = decided == ["breached", "corrected"]
        if corrected:
            assert line["outcome"] in ("met", "cancelled")
        else:
            assert line["outcome"] == (decided[0] if decided else "open")
        assert line.get("corrected", False) == corrected
        if line["outcome"] == "open" and line["due_at"] is not None:
            assert line["due_at"] >= until.strftime("%Y-%m-%dT%H:%M:%SZ")


@given(log_steps, st.data())
@settings(max_examples=150, deadline=None)
def test_snapshot_and_restore_resume_exactly(steps, data):
    transitions = build_log(steps)
    cut = data.draw(st.integers(0, len(transitions)))
    whole = SlaEngine(POLICY)
    first_part, latest = drive_all(whole, transitions[:cut])
    expected, _ = drive_all(whole, transitions[cut:], latest)

    before = SlaEngine(POLICY, keep_history=False)
    drive_all(before, transitions[:cut])
    stored = json.loads(json.dumps(before.snapshot()))  # what Postgres would hold
    resumed = SlaEngine.restore(POLICY, stored)
    got, _ = drive_all(resumed, transitions[cut:], latest)

    assert [(e.kind, e.key, e.outcome_line()) for e in got] == [(e.kind, e.key, e.outcome_line()) for e in expected]


def test_changes_list_every_clock_touched_since_the_last_call():
    engine = SlaEngine(POLICY)
    engine.observe(transition("lead.activity", berlin(2026, 11, 2, 0), "L0"))  # a week starts here
    engine.observe(transition("lead.marketing_qualified", berlin(2026, 11, 2, 8), "L1", stage="new", to="mql"))
    engine.observe(transition("lead.assigned", berlin(2026, 11, 2, 8, 30), "L1"))
    changes = engine.take_changes()
    assert sorted(c["sla"] for c in changes.clocks) == ["contact_attempts", "sales_acceptance", "speed_to_lead"]
    assert all(not c["final"] for c in changes.clocks)
    assert changes.state["first_seen_at"] == "2026-11-01T23:00:00Z"
    # November started before the first event: its month is counted (an older event may still
    # make it eligible) but not judged.
    assert [(w["sla"], w["owner"], w["leads"]) for w in changes.windows] == [
        ("marketing_weekly_volume", None, ["L1"]), ("rep_monthly_volume", "ana", ["L1"])]
    assert engine.take_changes().clocks == []
    engine.observe(transition("contact.attempted", berlin(2026, 11, 2, 9), "L1"))
    changes = engine.take_changes()
    by_sla = {c["sla"]: c for c in changes.clocks}
    assert by_sla["speed_to_lead"]["final"] and by_sla["speed_to_lead"]["outcome"] == "met"
    assert by_sla["contact_attempts"]["attempts"] == 1
    assert changes.windows == []


def test_advance_without_anything_due_emits_nothing_and_time_never_goes_back():
    engine = SlaEngine(POLICY)
    engine.observe(transition("lead.marketing_qualified", berlin(2026, 11, 2, 8), "L1", stage="new", to="mql"))
    assert engine.next_deadline() == berlin(2026, 11, 2, 10)
    assert engine.advance(berlin(2026, 11, 2, 9)) == []
    assert engine.advance(berlin(2026, 11, 1)) == []
    assert engine.now == berlin(2026, 11, 2, 9)


def test_finished_clocks_leave_the_live_set():
    engine = SlaEngine(POLICY, keep_history=False)
    engine.observe(transition("lead.marketing_qualified", berlin(2026, 11, 2, 8), "L1", stage="new", to="mql"))
    engine.observe(transition("contact.connected", berlin(2026, 11, 2, 9), "L1"))
    assert list(engine.live_clocks()) == []
    assert engine.snapshot()["clocks"] == []


def test_restore_refuses_an_unknown_snapshot_format():
    try:
        SlaEngine.restore(POLICY, {"format": 99})
    except ValueError as exc:
        assert "format" in str(exc)
    else:
        raise AssertionError("restore accepted format 99")


def test_replay_outcomes_defaults_until_to_the_largest_event_time():
    items = [transition("lead.marketing_qualified", berlin(2026, 11, 2, 8), "L1", stage="new", to="mql"),
             transition("lead.activity", berlin(2026, 11, 2, 12), "L2"),
             transition("lead.activity", berlin(2026, 11, 2, 9), "L2")]
    lines = replay_outcomes(POLICY, items)
    assert [(line["sla"], line["outcome"]) for line in lines] == [("speed_to_lead", "breached")]
    assert replay_outcomes(POLICY, []) == []


def test_clocks_due_at_the_same_time_breach_in_the_same_order_after_a_restore():
    # L0 arrives first in the log but started a minute after L1: both are due Wednesday 17:00.
    policy = load_policy()
    log = [
        transition("lead.assigned", berlin(2026, 10, 26, 7, 0), "L0", stage="new", event_id="e0", owner="o", team="t"),
        transition("lead.assigned", berlin(2026, 10, 26, 6, 59), "L1", stage="new", event_id="e1", owner="o", team="t"),
    ]
    uninterrupted = SlaEngine(policy, keep_history=False)
    for t in log:
        uninterrupted.observe(t)
    restored = SlaEngine.restore(policy, json.loads(json.dumps(uninterrupted.snapshot())), keep_history=False)
    late = berlin(2026, 10, 29, 9, 0)
    order = lambda engine: [(e.kind, e.key) for e in engine.advance(late) if e.kind == "breached"]
    expected = order(uninterrupted)
    assert [key[1] for _, key in expected if key[0] == "sales_acceptance"] == ["L1", "L0"]  # by start time
    assert order(restored) == expected
