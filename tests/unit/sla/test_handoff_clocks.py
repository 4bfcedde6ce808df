"""sales_acceptance, contact_attempts and closed_loop_feedback (contract §4)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.sla_monitor.domain import SlaEngine, load_policy, parse_policy

from .helpers import berlin, drive, lines_of, new_york, transition, z


def assigned(at, lead_id="L1", **kw):
    return transition("lead.assigned", at, lead_id, **kw)


def attempts(start, count, lead_id="L1", **kw):
    return [transition("contact.attempted", start + timedelta(hours=i), lead_id, **kw) for i in range(count)]


# --- sales_acceptance -------------------------------------------------------------------------

SALES = "sales_acceptance"


@pytest.mark.parametrize(
    ("at", "due"),
    [
        (berlin(2026, 11, 2, 10, 0), berlin(2026, 11, 4, 17, 0)),  # Monday 10:00 -> Wednesday 17:00
        (berlin(2026, 11, 2, 17, 30), berlin(2026, 11, 5, 17, 0)),  # Monday 17:30 -> Thursday 17:00
        (berlin(2026, 11, 7, 10, 0), berlin(2026, 11, 11, 17, 0)),  # Saturday -> Wednesday 17:00
    ],
)
def test_sales_acceptance_due_examples(at, due):
    line = lines_of(SALES, [assigned(at)], at)[0]
    assert (line["due_at"], line["outcome"]) == (z(due), "open")


def test_weekend_handoff_accepted_monday_is_met():
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 7, 15)), transition("lead.accepted", berlin(2026, 11, 9, 11), to="sal")],
                     berlin(2026, 11, 12))
    assert lines[0] == {
        "sla": SALES, "lead_id": "L1", "scope": {}, "outcome": "met", "started_at": z(berlin(2026, 11, 7, 15)),
        "due_at": z(berlin(2026, 11, 11, 17)), "stopped_at": z(berlin(2026, 11, 9, 11)),
    }


def test_rejection_also_meets_sales_acceptance():
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10)), transition("lead.rejected", berlin(2026, 11, 3, 10), to="rejected")],
                     berlin(2026, 11, 5))
    assert lines[0]["outcome"] == "met"


def test_no_answer_by_wednesday_close_is_breached():
    engine = SlaEngine(load_policy())
    drive(engine, [assigned(berlin(2026, 11, 2, 10))])
    assert engine.advance(berlin(2026, 11, 4, 17, 0)) == []
    assert [e.kind for e in engine.advance(berlin(2026, 11, 4, 17, 0, 1))] == ["breached"]


def test_holiday_in_team_calendar_moves_the_due_time():
    policy = parse_policy('[calendars.default]\nholidays = [2026-11-03]\n')
    line = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10))], berlin(2026, 11, 2, 11), policy)[0]
    assert line["due_at"] == z(berlin(2026, 11, 5, 17))


def test_team_in_new_york_gets_new_york_business_days():
    policy = parse_policy('[calendars.ny]\ntimezone = "America/New_York"\n[teams.us-east]\ncalendar = "ny"\n')
    # Monday 17:30 Berlin is 11:30 in New York: still Monday's business hours there.
    line = lines_of(SALES, [assigned(berlin(2026, 11, 2, 17, 30), team="us-east")], berlin(2026, 11, 3), policy)[0]
    assert line["due_at"] == z(new_york(2026, 11, 4, 17, 0))


def test_second_assignment_while_open_starts_no_clock():
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10)), assigned(berlin(2026, 11, 3, 10), owner="bo")], berlin(2026, 11, 3, 11))
    assert len(lines) == 1


def test_reassignment_after_a_decision_starts_a_new_clock():
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10)), transition("lead.accepted", berlin(2026, 11, 2, 11), to="sal"),
                             assigned(berlin(2026, 11, 9, 10), stage="sal")], berlin(2026, 11, 9, 11))
    assert [line["outcome"] for line in lines] == ["met", "open"]


def test_reassignment_after_a_breach_starts_a_new_clock_and_one_accept_stops_both():
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10)), assigned(berlin(2026, 11, 5, 10), owner="bo"),
                             transition("lead.accepted", berlin(2026, 11, 5, 12), to="sal")], berlin(2026, 11, 6))
    assert [(line["outcome"], line["stopped_at"]) for line in lines] == [
        ("breached", z(berlin(2026, 11, 5, 12))), ("met", z(berlin(2026, 11, 5, 12)))]


@pytest.mark.parametrize(("etype", "stage"), [("lead.recycled", "recycled"), ("lead.disqualified", "disqualified")])
def test_recycled_or_disqualified_first_cancels(etype, stage):
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10)), transition(etype, berlin(2026, 11, 2, 12), to=stage)], berlin(2026, 11, 6))
    assert lines[0]["outcome"] == "cancelled"


def test_an_ignored_acceptance_still_counts_as_the_answer():
    # The lead already moved on to sql; the late lead.accepted is ignored (backward) but happened.
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10)),
                             transition("lead.accepted", berlin(2026, 11, 2, 11), stage="sql", ignored="backward")],
                     berlin(2026, 11, 6))
    assert lines[0]["outcome"] == "met"


def test_override_per_team():
    policy = parse_policy('[slas.sales_acceptance]\n[[slas.sales_acceptance.overrides]]\nwhen = { team = "desk" }\nbusiness_days = 0\n')
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10), team="desk"), assigned(berlin(2026, 11, 2, 10), "L2")],
                     berlin(2026, 11, 2, 11), policy)
    assert [line["due_at"] for line in lines] == [z(berlin(2026, 11, 2, 17)), z(berlin(2026, 11, 4, 17))]


# --- contact_attempts -------------------------------------------------------------------------

ATTEMPTS = "contact_attempts"


def recycled(at, reason="no_response", lead_id="L1", etype="lead.recycled", to="recycled"):
    return transition(etype, at, lead_id, to=to, reason=reason)


@pytest.mark.parametrize(("segment", "made", "outcome"), [
    ("smb", 6, "met"), ("smb", 5, "breached"), ("enterprise", 7, "breached"), ("enterprise", 8, "met"),
])
def test_attempts_needed_before_giving_up(segment, made, outcome):
    start = berlin(2026, 11, 2, 10)
    lines = lines_of(ATTEMPTS, [assigned(start, segment=segment), *attempts(start, made, segment=segment),
                                recycled(berlin(2026, 11, 9, 10))], berlin(2026, 11, 10))
    assert lines == [{
        "sla": ATTEMPTS, "lead_id": "L1", "scope": {}, "outcome": outcome, "started_at": z(start), "due_at": None,
        "stopped_at": z(berlin(2026, 11, 9, 10)), "attempts": made, "required": 8 if segment == "enterprise" else 6,
    }]


def test_disqualified_no_response_decides_too():
    start = berlin(2026, 11, 2, 10)
    lines = lines_of(ATTEMPTS, [assigned(start), *attempts(start, 2),
                                recycled(berlin(2026, 11, 9), etype="lead.disqualified", to="disqualified")], berlin(2026, 11, 10))
    assert (lines[0]["outcome"], lines[0]["attempts"]) == ("breached", 2)


def test_other_reason_cancels():
    start = berlin(2026, 11, 2, 10)
    lines = lines_of(ATTEMPTS, [assigned(start), recycled(berlin(2026, 11, 3), reason="budget")], berlin(2026, 11, 4))
    assert lines[0]["outcome"] == "cancelled"


def test_connected_cancels():
    start = berlin(2026, 11, 2, 10)
    lines = lines_of(ATTEMPTS, [assigned(start), *attempts(start, 2), transition("contact.connected", berlin(2026, 11, 2, 15)),
                                *attempts(berlin(2026, 11, 3, 10), 5), recycled(berlin(2026, 11, 9))], berlin(2026, 11, 10))
    assert (lines[0]["outcome"], lines[0]["attempts"], lines[0]["stopped_at"]) == ("cancelled", 2, z(berlin(2026, 11, 2, 15)))


def test_attempts_before_the_start_do_not_count_and_undecided_stays_open():
    start = berlin(2026, 11, 2, 10)
    lines = lines_of(ATTEMPTS, [assigned(start), *attempts(berlin(2026, 11, 1, 10), 3)], berlin(2026, 12, 31))
    assert (lines[0]["outcome"], lines[0]["attempts"], lines[0]["due_at"]) == ("open", 0, None)


def test_no_breach_by_time_alone():
    engine = SlaEngine(load_policy())
    drive(engine, [assigned(berlin(2026, 11, 2, 10))])
    emissions = engine.advance(berlin(2027, 11, 2))
    assert [e.kind for e in emissions if e.clock is not None] == ["breached"]  # sales_acceptance only
    assert emissions[0].sla == SALES


# --- closed_loop_feedback ---------------------------------------------------------------------

FEEDBACK = "closed_loop_feedback"


def opportunity(at, lead_id="L1", stage="sql", **kw):
    """An opportunity.created; moves to opportunity unless ignored (then it stays put)."""
    to = stage if kw.get("ignored") else "opportunity"
    return transition("opportunity.created", at, lead_id, stage=stage, to=to, **kw)


def test_deal_result_within_90_days_is_met():
    start = berlin(2026, 11, 2, 10)
    lines = lines_of(FEEDBACK, [opportunity(start), transition("deal.lost", berlin(2027, 1, 15), stage="opportunity", to="lost")],
                     berlin(2027, 2, 1))
    assert lines[0] == {"sla": FEEDBACK, "lead_id": "L1", "scope": {}, "outcome": "met", "started_at": z(start),
                        "due_at": z(start + timedelta(days=90)), "stopped_at": z(berlin(2027, 1, 15))}


def test_no_result_within_90_calendar_days_is_breached():
    start = berlin(2026, 11, 2, 10)
    engine = SlaEngine(load_policy())
    drive(engine, [opportunity(start)])
    # Weekly windows close on the way (no clock emissions); the clock is not past due yet.
    assert all(e.clock is None for e in engine.advance(start + timedelta(days=90)))
    breaches = [e for e in engine.advance(start + timedelta(days=90, seconds=1)) if e.clock is not None]
    assert [(e.kind, e.sla) for e in breaches] == [("breached", FEEDBACK)]


def test_won_deal_stops_and_each_opportunity_has_its_own_clock():
    lines = lines_of(FEEDBACK, [opportunity(berlin(2026, 11, 2)), opportunity(berlin(2026, 11, 3), stage="opportunity"),
                                transition("deal.won", berlin(2026, 12, 1), stage="opportunity", to="customer")],
                     berlin(2026, 12, 2))
    # The second opportunity.created names the stage the lead is in: applied, no move, own clock.
    assert [line["outcome"] for line in lines] == ["met", "met"]


def test_ignored_opportunity_starts_no_clock():
    lines = lines_of(FEEDBACK, [opportunity(berlin(2026, 11, 2), stage="customer", ignored="final")], berlin(2026, 11, 3))
    assert lines == []
