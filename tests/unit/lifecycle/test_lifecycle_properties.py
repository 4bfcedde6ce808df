"""Properties over generated logs of valid events of all 17 types (with repeated event ids)."""
from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.envelope import EVENT_TYPES, parse_event
from services.lifecycle.domain import (
    IGNORE_REASON,
    MAIN_PATH_INDEX,
    STAGE_OF_EVENT_TYPE,
    LeadLog,
    apply_event,
    fold,
    states_from_transitions,
)

from .strategies import event_logs, events, lead_states

_REASONS = {None, "backward", "final", "not_allowed", "duplicate"}


def _run(log):
    leads = LeadLog()
    return leads, list(leads.run(log))


@settings(max_examples=300)
@given(event_logs())
def test_versions_rise_by_one_per_applied_event_and_duplicates_get_none(log):
    _, transitions = _run(log)
    assert len(transitions) == len(log)
    seen_ids: set[str] = set()
    last_version: dict[str, int] = defaultdict(int)
    for event, t in zip(log, transitions):
        assert (t.lead_id, t.event_id, t.event) == (event.lead_id, event.event_id, event)
        if event.event_id in seen_ids:
            assert (t.version, t.ignored, t.to_stage) == (None, "duplicate", t.from_stage)
        else:
            last_version[t.lead_id] += 1
            assert t.version == last_version[t.lead_id]
            assert t.ignored != "duplicate"
        seen_ids.add(event.event_id)


@settings(max_examples=300)
@given(event_logs())
def test_a_main_path_stage_never_goes_back(log):
    _, transitions = _run(log)
    for t in transitions:
        if t.from_stage in MAIN_PATH_INDEX and t.to_stage in MAIN_PATH_INDEX:
            assert MAIN_PATH_INDEX[t.to_stage] >= MAIN_PATH_INDEX[t.from_stage]


@settings(max_examples=300)
@given(event_logs())
def test_customer_is_final(log):
    _, transitions = _run(log)
    customers: set[str] = set()
    for t in transitions:
        if t.lead_id in customers:
            assert t.from_stage == t.to_stage == "customer"
        if t.to_stage == "customer":
            customers.add(t.lead_id)


@settings(max_examples=300)
@given(event_logs())
def test_ignored_events_never_move_and_reasons_are_the_contract_ones(log):
    _, transitions = _run(log)
    for t in transitions:
        assert t.ignored in _REASONS
        if t.ignored is not None:
            assert t.to_stage == t.from_stage
        if t.to_stage != t.from_stage:
            assert t.from_stage is None or STAGE_OF_EVENT_TYPE.get(t.event.type) == t.to_stage


@settings(max_examples=300)
@given(event_logs())
def test_projection_equals_replay_of_the_store(log):
    """Folding each lead's stored (non-duplicate) events from scratch gives the incremental state."""
    leads, transitions = _run(log)
    stored: dict[str, list] = defaultdict(list)
    for t in transitions:
        if t.version is not None:
            stored[t.lead_id].append(t.event)
    assert {lead_id: fold(lead_events) for lead_id, lead_events in stored.items()} == leads.states
    assert states_from_transitions(transitions) == leads.states
    for lead_id, state in leads.states.items():
        assert state.version == len(stored[lead_id])


@settings(max_examples=500)
@given(lead_states(), events(lead_ids=st.just("L1")))
def test_apply_event_on_any_state_follows_the_table(state, event):
    new_state, t = apply_event(state, event)
    assert (t.from_stage, t.version, new_state.version) == (state.stage, state.version + 1, state.version + 1)
    target = STAGE_OF_EVENT_TYPE.get(event.type)
    expected_reason = None if target is None else IGNORE_REASON[state.stage][target]
    assert t.ignored == expected_reason
    assert t.to_stage == new_state.stage == (target if target and expected_reason is None else state.stage)
    after = (new_state.lead_id, new_state.channel, new_state.segment, new_state.fit, new_state.owner, new_state.team)
    assert after == (t.lead_id, t.channel, t.segment, t.fit, t.owner, t.team)
    if expected_reason is not None and event.type != "lead.created":
        assert (new_state.fit, new_state.owner, new_state.team) == (state.fit, state.owner, state.team)


@pytest.mark.parametrize("etype", EVENT_TYPES)
@settings(max_examples=20)
@given(data=st.data())
def test_strategy_generates_valid_events_of_every_type(etype, data):
    event = data.draw(events(types=[etype]))
    assert event.type == etype
    assert parse_event(event.to_json()) == event  # valid by the contract's own rules
