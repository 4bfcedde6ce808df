"""Lead attributes carried on states and transitions: channel, segment, fit, owner, team.

Includes the decisions machine.py documents where the contract is silent.
"""
from __future__ import annotations

from services.lifecycle.domain import LeadState, apply_event, fold

from .builders import make_event


def _attributes(state_or_transition) -> tuple:
    s = state_or_transition
    return (s.channel, s.segment, s.fit, s.owner, s.team)


def test_attributes_start_unknown():
    state, t = apply_event(None, make_event("lead.activity"))
    assert _attributes(state) == _attributes(t) == (None, None, "unknown", None, None)


def test_channel_and_segment_come_from_lead_created():
    state, t = apply_event(None, make_event("lead.created", channel="website", segment="smb"))
    assert (state.channel, state.segment) == (t.channel, t.segment) == ("website", "smb")


def test_fit_is_the_latest_fit_of_scored_or_marketing_qualified():
    state = fold([
        make_event("lead.created"),
        make_event("lead.scored", fit="poor"),
    ])
    assert state.fit == "poor"
    state, t = apply_event(state, make_event("lead.marketing_qualified", fit="good"))
    assert state.fit == t.fit == "good"
    state, _ = apply_event(state, make_event("lead.scored", score=3, fit="unknown"))
    assert state.fit == "unknown"


def test_fit_is_kept_when_the_event_names_none():
    state = fold([make_event("lead.scored", fit="good"), make_event("lead.scored"),
                  make_event("lead.marketing_qualified")])
    assert state.fit == "good"


def test_owner_and_team_come_from_assigned():
    state, t = apply_event(None, make_event("lead.assigned", owner="ben", team="latam"))
    assert (state.owner, state.team) == (t.owner, t.team) == ("ben", "latam")
    state, _ = apply_event(state, make_event("lead.assigned", owner="chen", team="emea"))
    assert (state.owner, state.team) == ("chen", "emea")


def test_accepted_with_owner_updates_owner_but_not_team():
    state = fold([make_event("lead.marketing_qualified"), make_event("lead.assigned", owner="ben", team="latam"),
                  make_event("lead.accepted", owner="dora")])
    assert (state.stage, state.owner, state.team) == ("sal", "dora", "latam")


def test_accepted_without_owner_keeps_owner():
    state = fold([make_event("lead.assigned", owner="ben", team="latam"), make_event("lead.accepted")])
    assert (state.stage, state.owner) == ("sal", "ben")


def test_contact_and_meeting_owner_do_not_change_the_lead_owner():
    state = fold([make_event("lead.assigned", owner="ben", team="latam"),
                  make_event("contact.attempted", owner="zoe"), make_event("meeting.booked", owner="zoe")])
    assert state.owner == "ben"


def test_transition_carries_attributes_after_the_event():
    state = LeadState("L1", "mql", 2, "website", "smb", "good", None, None)
    _, t = apply_event(state, make_event("lead.assigned", owner="ana", team="emea"))
    assert _attributes(t) == ("website", "smb", "good", "ana", "emea")


# --- decisions where the contract is silent ------------------------------------------------------

def test_ignored_event_changes_no_attribute():
    """backward / final / not_allowed: no effect on stage, fit or owner."""
    at_sql = LeadState("L1", "sql", 5, "website", "smb", "good", "ana", "emea")
    state, t = apply_event(at_sql, make_event("lead.marketing_qualified", fit="poor"))
    assert (t.ignored, state.fit, t.fit) == ("backward", "good", "good")
    state, t = apply_event(at_sql, make_event("lead.accepted", owner="zoe"))
    assert (t.ignored, state.owner, t.owner) == ("backward", "ana", "ana")

    customer = LeadState("L1", "customer", 9, "website", "smb", "good", "ana", "emea")
    state, t = apply_event(customer, make_event("lead.marketing_qualified", fit="poor"))
    assert (t.ignored, state.fit) == ("final", "good")

    rejected = LeadState("L1", "rejected", 3, None, None, "poor", "ana", "emea")
    state, t = apply_event(rejected, make_event("lead.accepted", owner="zoe"))
    assert (t.ignored, state.owner) == ("not_allowed", "ana")


def test_ignored_event_still_takes_a_version():
    at_sql = LeadState("L1", "sql", 5)
    state, t = apply_event(at_sql, make_event("lead.information_qualified"))
    assert (t.version, state.version) == (6, 6)


def test_events_that_move_no_stage_update_attributes_on_final_and_closed_leads():
    for stage in ("customer", "lost", "disqualified"):
        state, t = apply_event(LeadState("L1", stage, 4), make_event("lead.scored", fit="good"))
        assert (t.ignored, state.fit) == (None, "good")
        state, t = apply_event(state, make_event("lead.assigned", owner="ben", team="latam"))
        assert (t.ignored, state.owner, state.team) == (None, "ben", "latam")


def test_event_naming_the_current_stage_updates_attributes():
    at_mql = LeadState("L1", "mql", 2, fit="poor")
    state, t = apply_event(at_mql, make_event("lead.marketing_qualified", fit="good"))
    assert (t.to_stage, t.ignored, state.fit) == ("mql", None, "good")


def test_second_lead_created_on_a_new_lead_applies_without_move_and_keeps_known_origin():
    state = fold([make_event("lead.created", channel="website", segment="smb")])
    state, t = apply_event(state, make_event("lead.created", channel="event", segment="enterprise"))
    assert (t.version, t.from_stage, t.to_stage, t.ignored) == (2, "new", "new", None)
    assert (state.channel, state.segment) == ("website", "smb")


def test_second_lead_created_fills_an_origin_still_unknown():
    state = fold([make_event("lead.created", segment="smb")])
    state, _ = apply_event(state, make_event("lead.created", channel="referral", segment="enterprise"))
    assert (state.channel, state.segment) == ("referral", "smb")


def test_late_lead_created_is_backward_but_still_gives_the_origin():
    """Upstream sent the MQL before the form's lead.created: the lead was implicitly created."""
    state = fold([make_event("lead.marketing_qualified", fit="good")])
    state, t = apply_event(state, make_event("lead.created", channel="website", segment="smb"))
    assert (t.version, t.from_stage, t.to_stage, t.ignored) == (2, "mql", "mql", "backward")
    assert (state.stage, state.channel, state.segment, t.channel) == ("mql", "website", "smb", "website")


def test_lead_created_on_a_recycled_lead_moves_it_to_new():
    state, t = apply_event(LeadState("L1", "recycled", 7, "website"), make_event("lead.created", channel="event"))
    assert (t.from_stage, t.to_stage, t.ignored) == ("recycled", "new", None)
    assert state.channel == "website"


def test_lead_created_on_other_stages():
    for stage, reason in [("rejected", "not_allowed"), ("lost", "not_allowed"),
                          ("disqualified", "not_allowed"), ("customer", "final"), ("iql", "backward")]:
        state, t = apply_event(LeadState("L1", stage, 3), make_event("lead.created", channel="event"))
        assert (t.to_stage, t.ignored, state.channel) == (stage, reason, "event")


def test_empty_optional_strings_say_nothing():
    state = fold([make_event("lead.created", channel="", segment=""),
                  make_event("lead.assigned", owner="ben", team="latam"),
                  make_event("lead.accepted", owner="")])
    assert (state.channel, state.segment, state.owner) == (None, None, "ben")
