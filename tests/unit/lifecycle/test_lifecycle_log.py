"""Running a log: global event_id dedup, duplicate transitions, projections, contract lines."""
from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from services.lifecycle.domain import (
    LeadLog,
    LeadState,
    Transition,
    apply_event,
    duplicate_transition,
    fold,
    run_log,
    state_after,
    states_from_transitions,
)

from .builders import make_event


def test_run_log_versions_count_per_lead_and_skip_duplicates():
    log = [
        make_event("lead.created", "A", event_id="1"),
        make_event("lead.created", "B", event_id="2"),
        make_event("lead.activity", "A", event_id="3"),
        make_event("lead.activity", "A", event_id="3"),
        make_event("lead.marketing_qualified", "A", event_id="4"),
    ]
    lines = [t.to_contract_json() for t in run_log(log)]
    assert [(x["lead_id"], x["version"], x["ignored"]) for x in lines] == [
        ("A", 1, None), ("B", 1, None), ("A", 2, None), ("A", None, "duplicate"), ("A", 3, None),
    ]


def test_duplicate_has_no_effect_even_with_a_different_payload_or_type():
    log = [
        make_event("lead.created", event_id="1"),
        make_event("lead.marketing_qualified", event_id="2", fit="good"),
        make_event("deal.won", event_id="2"),  # same id, different content: still a duplicate
    ]
    transitions = list(run_log(log))
    dup = transitions[-1]
    assert (dup.version, dup.from_stage, dup.to_stage, dup.ignored, dup.fit) == (None, "mql", "mql", "duplicate", "good")
    assert dup.event is log[-1]


def test_duplicate_id_first_seen_on_another_lead_does_not_create_the_lead():
    leads = LeadLog()
    leads.apply(make_event("lead.created", "A", event_id="x"))
    dup = leads.apply(make_event("lead.created", "B", event_id="x"))
    assert dup.to_contract_json() == {
        "lead_id": "B", "event_id": "x", "version": None, "from": None, "to": None, "ignored": "duplicate",
    }
    assert set(leads.states) == {"A"}
    # B's first real event is still its version 1.
    assert leads.apply(make_event("lead.created", "B", event_id="y")).version == 1


def test_duplicate_transition_of_a_known_lead():
    state = LeadState("L1", "sal", 4, "website", "smb", "good", "ana", "emea")
    event = make_event("lead.accepted", event_id="e4")
    t = duplicate_transition(state, event)
    assert t == Transition("L1", "e4", None, "sal", "sal", "duplicate", event,
                           "website", "smb", "good", "ana", "emea")


def test_lead_log_apply_and_run_agree():
    log = [make_event("lead.created", "A", event_id="1"), make_event("lead.accepted", "A", event_id="2"),
           make_event("lead.accepted", "A", event_id="2"), make_event("deal.lost", "A", event_id="3")]
    one_by_one = LeadLog()
    applied = [one_by_one.apply(e) for e in log]
    streamed = LeadLog()
    assert list(streamed.run(log)) == applied
    assert streamed.states == one_by_one.states
    assert streamed.seen_event_ids == one_by_one.seen_event_ids == {"1", "2", "3"}
    assert streamed.states["A"].stage == "lost"


def test_lead_log_continues_across_runs():
    leads = LeadLog()
    list(leads.run([make_event("lead.created", event_id="1")]))
    second = list(leads.run([make_event("lead.created", event_id="1"), make_event("lead.activity", event_id="2")]))
    assert [(t.version, t.ignored) for t in second] == [(None, "duplicate"), (2, None)]


def test_log_order_wins_over_occurred_at():
    log = [
        make_event("lead.created", occurred_at="2026-11-02T10:00:00Z"),
        make_event("lead.marketing_qualified", occurred_at="2026-11-02T09:00:00Z"),
        make_event("lead.information_qualified", occurred_at="2026-11-02T08:00:00Z"),
    ]
    assert [(t.from_stage, t.to_stage, t.ignored) for t in run_log(log)] == [
        (None, "new", None), ("new", "mql", None), ("mql", "mql", "backward"),
    ]


def test_fold_continues_from_a_state_and_of_nothing_is_none():
    assert fold([]) is None
    start = LeadState("L1", "mql", 2)
    assert fold([], start) is start
    assert fold([make_event("lead.accepted")], start) == LeadState("L1", "sal", 3)


def test_state_after_and_states_from_transitions():
    transitions = list(run_log([
        make_event("lead.created", "A", event_id="1", channel="website"),
        make_event("lead.assigned", "A", event_id="2", owner="ana", team="emea"),
        make_event("lead.assigned", "A", event_id="2", owner="ana", team="emea"),
        make_event("lead.scored", "B", event_id="3", fit="good"),
    ]))
    assert state_after(transitions[1]) == LeadState("A", "new", 2, "website", None, "unknown", "ana", "emea")
    with pytest.raises(ValueError, match="duplicate"):
        state_after(transitions[2])
    assert states_from_transitions(transitions) == {
        "A": LeadState("A", "new", 2, "website", None, "unknown", "ana", "emea"),
        "B": LeadState("B", "new", 1, None, None, "good", None, None),
    }


def test_contract_json_has_the_contract_keys_in_order_and_serialises():
    t = next(run_log([make_event("lead.created", "L1", event_id="e1")]))
    line = t.to_contract_json()
    assert list(line) == ["lead_id", "event_id", "version", "from", "to", "ignored"]
    assert json.loads(json.dumps(line)) == {
        "lead_id": "L1", "event_id": "e1", "version": 1, "from": None, "to": "new", "ignored": None}


def test_results_are_frozen_equal_and_picklable_like_plainly_built_ones():
    """apply_event builds its results the fast way (frozen_build.py); they must be ordinary instances."""
    event = make_event("lead.created", channel="website")
    state, t = apply_event(None, event)
    assert type(state) is LeadState and type(t) is Transition
    assert state == LeadState(event.lead_id, "new", 1, "website")
    assert t == Transition(event.lead_id, event.event_id, 1, None, "new", None, event, "website")
    assert hash(state) == hash(LeadState(event.lead_id, "new", 1, "website"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.stage = "mql"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.ignored = "final"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(state)) == state
    assert dataclasses.replace(state, stage="mql").stage == "mql"
    assert repr(state).startswith("LeadState(lead_id=")
    assert not hasattr(state, "__dict__")
