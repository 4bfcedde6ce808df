"""speed_to_lead: website MQLs are contacted within 1 hour of business time (contract §4)."""
from __future__ import annotations

from services.sla_monitor.domain import SlaEngine, load_policy, parse_policy

from .helpers import berlin, drive, lines_of, new_york, transition, z

SLA = "speed_to_lead"


def mql(at, lead_id="L1", **kw):
    kw.setdefault("stage", "new")
    return transition("lead.marketing_qualified", at, lead_id, to="mql", **kw)


def contact(at, lead_id="L1", etype="contact.attempted", **kw):
    return transition(etype, at, lead_id, **kw)


def test_mql_at_0800_contacted_at_0930_is_met():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8)), contact(berlin(2026, 11, 2, 9, 30))], berlin(2026, 11, 2, 12))
    assert lines == [{
        "sla": SLA, "lead_id": "L1", "scope": {}, "outcome": "met",
        "started_at": "2026-11-02T07:00:00Z", "due_at": "2026-11-02T09:00:00Z", "stopped_at": "2026-11-02T08:30:00Z",
    }]


def test_connected_also_stops_the_clock():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 10)), contact(berlin(2026, 11, 2, 10, 5), etype="contact.connected")],
                     berlin(2026, 11, 2, 12))
    assert lines[0]["outcome"] == "met"


def test_no_contact_is_breached_once_clock_time_passes_due():
    engine = SlaEngine(load_policy())
    drive(engine, [mql(berlin(2026, 11, 2, 8))])
    assert engine.advance(berlin(2026, 11, 2, 10, 0)) == []  # at due: not yet past it
    emissions = engine.advance(berlin(2026, 11, 2, 10, 0, 1))
    assert [(e.kind, e.sla) for e in emissions] == [("breached", SLA)]
    assert emissions[0].outcome_line()["stopped_at"] is None
    lines = engine.outcome_lines(berlin(2026, 11, 2, 11))
    assert lines[0]["outcome"] == "breached" and lines[0]["due_at"] == "2026-11-02T09:00:00Z"


def test_undecided_at_until_is_open():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8))], berlin(2026, 11, 2, 9, 59))
    assert lines[0]["outcome"] == "open" and lines[0]["stopped_at"] is None


def test_friday_evening_lead_is_due_monday_1000():
    friday_evening = berlin(2026, 11, 6, 19, 45)
    engine = SlaEngine(load_policy())
    drive(engine, [mql(friday_evening)])
    assert engine.advance(berlin(2026, 11, 8, 23, 59)) == []  # the weekend does not count
    drive(engine, [contact(berlin(2026, 11, 9, 9, 50))])
    line = engine.outcome_lines(berlin(2026, 11, 9, 12))[0]
    assert (line["outcome"], line["due_at"]) == ("met", z(berlin(2026, 11, 9, 10)))


def test_friday_1630_is_due_monday_0930():
    line = lines_of(SLA, [mql(berlin(2026, 11, 6, 16, 30))], berlin(2026, 11, 9, 9, 30))[0]
    assert (line["due_at"], line["outcome"]) == (z(berlin(2026, 11, 9, 9, 30)), "open")


def test_due_across_spring_forward_uses_summer_time():
    # Friday 27 March 2026 16:30 CET; Berlin switches to CEST on Sunday 29th.
    line = lines_of(SLA, [mql(berlin(2026, 3, 27, 16, 30))], berlin(2026, 3, 30, 12))[0]
    assert line["started_at"] == "2026-03-27T15:30:00Z"
    assert line["due_at"] == "2026-03-30T07:30:00Z"  # Monday 09:30 CEST
    assert line["outcome"] == "breached"


def test_team_calendar_in_new_york():
    policy = parse_policy('[calendars.ny]\ntimezone = "America/New_York"\n[teams.us-east]\ncalendar = "ny"\n')
    lines = lines_of(SLA, [mql(new_york(2026, 11, 6, 16, 30), team="us-east"), mql(new_york(2026, 11, 6, 16, 30), "L2")],
                     new_york(2026, 11, 9, 8), policy)
    assert lines[0]["due_at"] == z(new_york(2026, 11, 9, 9, 30))
    # The lead without a team counts in the default (Berlin) calendar: Friday 22:30 there.
    assert lines[1]["due_at"] == z(berlin(2026, 11, 9, 10, 0))


def test_only_website_leads_are_timed():
    assert lines_of(SLA, [mql(berlin(2026, 11, 2, 8), channel="referral")], berlin(2026, 11, 3)) == []


def test_a_stop_before_the_start_does_not_count():
    # Log order puts the attempt after the MQL, but it happened before it.
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 10)), contact(berlin(2026, 11, 2, 9, 50))], berlin(2026, 11, 2, 10, 30))
    assert (lines[0]["outcome"], lines[0]["stopped_at"]) == ("open", None)


def test_a_stop_at_the_start_counts():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 10)), contact(berlin(2026, 11, 2, 10))], berlin(2026, 11, 2, 10, 30))
    assert lines[0]["outcome"] == "met"


def test_late_stop_within_due_corrects_a_declared_breach():
    engine = SlaEngine(load_policy())
    emissions = drive(engine, [
        mql(berlin(2026, 11, 2, 8)),
        mql(berlin(2026, 11, 2, 11), "L2"),  # clock time moves past L1's due: breach declared
        contact(berlin(2026, 11, 2, 9, 45)),  # arrives late, happened before due
    ])
    assert [e.kind for e in emissions] == ["started", "breached", "started", "corrected"]
    corrected = emissions[-1]
    assert corrected.key == (SLA, "L1", corrected.clock.start_event_id)
    line = engine.outcome_lines(berlin(2026, 11, 2, 11))[0]
    assert line == {
        "sla": SLA, "lead_id": "L1", "scope": {}, "outcome": "met",
        "started_at": "2026-11-02T07:00:00Z", "due_at": "2026-11-02T09:00:00Z",
        "stopped_at": "2026-11-02T08:45:00Z", "corrected": True,
    }


def test_stop_after_due_keeps_the_breach_and_records_the_stop():
    engine = SlaEngine(load_policy())
    emissions = drive(engine, [mql(berlin(2026, 11, 2, 8)), contact(berlin(2026, 11, 2, 10, 30))])
    # replay's clock time reached 10:30 first and declared the breach; the stop is then recorded
    # with its own record, so leadflow.sla's last record of the clock states it
    assert [e.kind for e in emissions] == ["started", "breached", "late_stop"]
    assert emissions[-1].clock.stopped_at == berlin(2026, 11, 2, 10, 30)
    line = engine.outcome_lines(berlin(2026, 11, 2, 11))[0]
    assert (line["outcome"], line["stopped_at"]) == ("breached", z(berlin(2026, 11, 2, 10, 30)))
    assert "corrected" not in line


def test_stop_past_due_before_the_breach_was_declared_is_a_breach():
    # Live, the timer may lag: an event past due can arrive before advance() declared the breach.
    engine = SlaEngine(load_policy())
    engine.observe(mql(berlin(2026, 11, 2, 8)))
    emissions = engine.observe(contact(berlin(2026, 11, 2, 10, 30)))
    assert [e.kind for e in emissions] == ["breached"]


def test_only_the_first_stop_counts():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8)), contact(berlin(2026, 11, 2, 9, 10)),
                           contact(berlin(2026, 11, 2, 9, 20))], berlin(2026, 11, 2, 12))
    assert lines[0]["stopped_at"] == z(berlin(2026, 11, 2, 9, 10))


def test_entering_rejected_recycled_or_disqualified_first_cancels():
    for etype, stage in (("lead.rejected", "rejected"), ("lead.recycled", "recycled"), ("lead.disqualified", "disqualified")):
        lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8)), transition(etype, berlin(2026, 11, 2, 9), to=stage),
                               contact(berlin(2026, 11, 2, 9, 30), stage=stage)], berlin(2026, 11, 2, 12))
        assert (lines[0]["outcome"], lines[0]["stopped_at"]) == ("cancelled", z(berlin(2026, 11, 2, 9))), etype


def test_an_ignored_rejection_does_not_cancel():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8)),
                           transition("lead.rejected", berlin(2026, 11, 2, 9), ignored="not_allowed"),
                           contact(berlin(2026, 11, 2, 9, 30))], berlin(2026, 11, 2, 12))
    assert lines[0]["outcome"] == "met"


def test_cancel_after_the_breach_keeps_the_breach():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8)),
                           transition("lead.recycled", berlin(2026, 11, 2, 12), to="recycled")], berlin(2026, 11, 2, 13))
    assert lines[0]["outcome"] == "breached"


def test_re_entering_mql_after_recycled_starts_a_new_clock():
    first, again = mql(berlin(2026, 11, 2, 8)), mql(berlin(2026, 11, 3, 14), stage="recycled")
    lines = lines_of(SLA, [first, transition("lead.recycled", berlin(2026, 11, 2, 8, 30), to="recycled"), again,
                           contact(berlin(2026, 11, 3, 14, 10), stage="mql")], berlin(2026, 11, 3, 15))
    assert [(line["outcome"], line["started_at"]) for line in lines] == [
        ("cancelled", z(berlin(2026, 11, 2, 8))), ("met", z(berlin(2026, 11, 3, 14)))]


def test_re_entering_mql_after_rejected_starts_a_new_clock():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8)), contact(berlin(2026, 11, 2, 8, 30)),
                           transition("lead.rejected", berlin(2026, 11, 2, 9), to="rejected"),
                           mql(berlin(2026, 11, 4, 10), stage="rejected")], berlin(2026, 11, 4, 10, 30))
    assert [line["outcome"] for line in lines] == ["met", "open"]


def test_an_ignored_or_stay_in_mql_transition_starts_nothing():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8), stage="sal", ignored="backward"),
                           mql(berlin(2026, 11, 2, 8), stage="mql")], berlin(2026, 11, 2, 12))
    assert lines == []


def test_a_duplicate_never_stops_a_clock():
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 8)), contact(berlin(2026, 11, 2, 9), version=None, ignored="duplicate")],
                     berlin(2026, 11, 2, 9, 30))
    assert lines[0]["outcome"] == "open"


def test_clocks_carry_the_policy_version():
    engine = SlaEngine(load_policy())
    emissions = engine.observe(mql(berlin(2026, 11, 2, 8)))
    assert emissions[0].policy_version == load_policy().version
    assert emissions[0].to_snapshot()["policy_version"] == load_policy().version


def test_overrides_per_segment_change_the_due_time():
    policy = parse_policy('[slas.speed_to_lead]\n[[slas.speed_to_lead.overrides]]\nwhen = { segment = "enterprise" }\ndue = "15m"\n')
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 10), segment="enterprise"), mql(berlin(2026, 11, 2, 10), "L2")],
                     berlin(2026, 11, 2, 10), policy)
    assert [line["due_at"] for line in lines] == [z(berlin(2026, 11, 2, 10, 15)), z(berlin(2026, 11, 2, 11))]


def test_an_sla_can_be_switched_off_per_segment_and_scoped_by_source():
    policy = parse_policy("""
[slas.speed_to_lead]
scope = { channel = "website", source = ["website", "hubspot"] }
[[slas.speed_to_lead.overrides]]
when = { segment = "partner" }
enabled = false
""")
    lines = lines_of(SLA, [mql(berlin(2026, 11, 2, 10), "L1", source="website"),
                           mql(berlin(2026, 11, 2, 10), "L2", source="salesforce"),
                           mql(berlin(2026, 11, 2, 10), "L3", source="hubspot", segment="partner")],
                     berlin(2026, 11, 2, 10, 30), policy)
    assert [line["lead_id"] for line in lines] == ["L1"]
