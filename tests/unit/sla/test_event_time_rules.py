"""Contract v2 §4, "Outcomes follow event time alone", one rule at a time, worked by hand.

Each test drives the engine the way the live monitor can see the events (the clock time far
ahead of them, as after a backlog or a restart) and checks the outcome replay gives as well.
"""
from __future__ import annotations

from datetime import timedelta

from services.sla_monitor.domain import SlaEngine, load_policy

from .helpers import berlin, drive, lines_of, transition, z

POLICY = load_policy()
SPEED, SALES, WEEKLY = "speed_to_lead", "sales_acceptance", "marketing_weekly_volume"

MONDAY = berlin(2026, 11, 2)
NEXT_MONDAY = berlin(2026, 11, 9)


def mql(at, lead_id="L1", **kw):
    kw.setdefault("stage", "new")
    return transition("lead.marketing_qualified", at, lead_id, to="mql", **kw)


def assigned(at, lead_id="L1", **kw):
    return transition("lead.assigned", at, lead_id, **kw)


def clock_lines(engine, sla, until):
    return [line for line in engine.outcome_lines(until) if line["sla"] == sla]


# --- a cancel at or before due decides the clock, even after its breach was declared ----------

def test_a_late_cancel_that_happened_before_due_corrects_the_breach_to_cancelled():
    # MQL Monday 10:00, due 11:00. The lead was recycled at 10:30, but the CRM sync delivers that
    # only in the evening, after the clock time (the wall clock) declared the breach at 11:00.
    engine = SlaEngine(POLICY)
    drive(engine, [mql(berlin(2026, 11, 2, 10))])
    assert [e.kind for e in engine.advance(berlin(2026, 11, 2, 11, 0, 1))] == ["breached"]
    [emission] = engine.observe(transition("lead.recycled", berlin(2026, 11, 2, 10, 30), to="recycled",
                                           reason="timing"))
    assert (emission.kind, emission.clock.outcome, emission.clock.corrected) == ("corrected", "cancelled", True)
    [line] = clock_lines(engine, SPEED, berlin(2026, 11, 2, 20))
    assert (line["outcome"], line["stopped_at"], line.get("corrected")) == ("cancelled", z(berlin(2026, 11, 2, 10, 30)), True)


def test_a_cancel_after_due_changes_nothing():
    engine = SlaEngine(POLICY)
    drive(engine, [mql(berlin(2026, 11, 2, 10))])
    found = engine.observe(transition("lead.recycled", berlin(2026, 11, 2, 11, 30), to="recycled", reason="timing"))
    assert [(e.kind, e.at) for e in found] == [("breached", berlin(2026, 11, 2, 11, 30))]
    [line] = clock_lines(engine, SPEED, berlin(2026, 11, 2, 20))
    assert (line["outcome"], line["stopped_at"]) == ("breached", None)


# --- an event after the due time finds the clock breached -----------------------------------

def test_an_event_after_the_due_time_finds_the_clock_breached_before_the_clock_time_gets_there():
    # The monitor is behind (clock time still Monday 10:05) when a contact attempt of 11:30 arrives:
    # it finds the clock (due 11:00) breached, and its record carries the late stop.
    engine = SlaEngine(POLICY)
    drive(engine, [mql(berlin(2026, 11, 2, 10))])
    engine.advance(berlin(2026, 11, 2, 10, 5))
    found = engine.observe(transition("contact.attempted", berlin(2026, 11, 2, 11, 30)))
    assert [(e.kind, e.at, e.clock.stopped_at) for e in found] == [
        ("breached", berlin(2026, 11, 2, 11, 30), berlin(2026, 11, 2, 11, 30))]
    [line] = clock_lines(engine, SPEED, berlin(2026, 11, 2, 13))
    assert (line["outcome"], line["stopped_at"]) == ("breached", z(berlin(2026, 11, 2, 11, 30)))
    # Nothing is declared twice when the clock time catches up.
    assert engine.advance(berlin(2026, 11, 2, 13)) == []
    # A cancel of 11:40 changes nothing; a page view is not looked at.
    assert engine.observe(transition("lead.recycled", berlin(2026, 11, 2, 11, 40), to="recycled", reason="timing")) == []


def test_a_stop_in_time_arriving_after_a_late_stop_still_decides_the_clock():
    # Two dialer batches: the second attempt (12:00) arrives first, the first one (10:20) later.
    lines = lines_of(SPEED, [mql(berlin(2026, 11, 2, 10)), transition("contact.attempted", berlin(2026, 11, 2, 12)),
                             transition("contact.attempted", berlin(2026, 11, 2, 10, 20))], berlin(2026, 11, 2, 13))
    assert (lines[0]["outcome"], lines[0]["stopped_at"], lines[0].get("corrected")) == (
        "met", z(berlin(2026, 11, 2, 10, 20)), True)


# --- "while no such clock is open" is judged at the starting event's occurred_at --------------

def test_a_late_assignment_while_the_earlier_clock_was_still_open_at_its_time_starts_no_clock():
    # Assigned Monday 10:00 (due Wednesday 17:00); re-assigned Wednesday 09:00, delivered on Friday
    # when the clock time has long declared the first clock breached. At Wednesday 09:00 the first
    # clock was open: no second clock.
    engine = SlaEngine(POLICY)
    drive(engine, [assigned(berlin(2026, 11, 2, 10))])
    assert [e.clock.sla for e in engine.advance(berlin(2026, 11, 6, 12))] == [SALES]
    found = engine.observe(assigned(berlin(2026, 11, 4, 9), owner="bo"))
    assert [e for e in found if e.clock is not None and e.clock.sla == SALES] == []
    assert len(clock_lines(engine, SALES, berlin(2026, 11, 6, 12))) == 1


def test_an_assignment_after_the_earlier_clock_was_due_starts_a_new_clock_whatever_the_clock_time():
    # The same re-assignment on Thursday 09:00, seen while the clock time is still Monday.
    engine = SlaEngine(POLICY)
    drive(engine, [assigned(berlin(2026, 11, 2, 10))])
    found = engine.observe(assigned(berlin(2026, 11, 5, 9), owner="bo"))
    assert [(e.kind, e.clock.started_at) for e in found if e.clock.sla == SALES] == [
        ("started", berlin(2026, 11, 5, 9))]
    # the first one is breached when the clock time passes its due time (Wednesday 17:00)
    breached = engine.advance(berlin(2026, 11, 5, 10))
    assert [(e.kind, e.clock.started_at) for e in breached if e.clock.sla == SALES] == [
        ("breached", berlin(2026, 11, 2, 10))]


# --- a late assignment counts in its judged window, which is judged again ------------------

def windows_of(emissions):
    return [e for e in emissions if e.window is not None and e.sla == WEEKLY]


def week_line(engine, until):
    [line] = [line for line in engine.outcome_lines(until) if line["sla"] == WEEKLY]
    return line


def test_a_late_assignment_re_judges_the_week_count_fit_share_and_outcome():
    # 50 leads assigned in the week of Monday 2 November, 25 of them a good fit: met (share 0.5).
    # The judgement happens at 9 November 00:00; then a CRM batch brings a poor-fit lead assigned
    # on Friday 6 November: count 51, share 25/51 < 0.5, so the week is corrected to breached.
    engine = SlaEngine(POLICY)
    start = [transition("lead.activity", MONDAY, "X", kind="page_view")]
    leads = [assigned(MONDAY + timedelta(hours=9, minutes=i), f"G{i}", fit="good" if i < 25 else "poor")
             for i in range(50)]
    drive(engine, start + leads)
    [closed] = [e for e in engine.advance(NEXT_MONDAY) if e.window is not None and e.sla == WEEKLY]
    assert (closed.kind, closed.window.outcome, closed.window.count, closed.window.fit_share) == ("window_closed", "met", 50, 0.5)
    [again] = windows_of(engine.observe(assigned(berlin(2026, 11, 6, 15), "LATE", fit="poor")))
    assert (again.kind, again.window.outcome, again.window.count) == ("corrected", "breached", 51)
    assert again.window.fit_share == 25 / 51
    line = week_line(engine, NEXT_MONDAY + timedelta(hours=1))
    assert (line["outcome"], line["count"], line["fit_share"], line["corrected"]) == ("breached", 51, 25 / 51, True)
    # A good-fit one restores the share (26/52): corrected back to met.
    [back] = windows_of(engine.observe(assigned(berlin(2026, 11, 6, 16), "LATE2", fit="good")))
    assert (back.kind, back.window.outcome, back.window.count) == ("corrected", "met", 52)


def test_a_late_assignment_that_keeps_the_outcome_updates_the_count():
    engine = SlaEngine(POLICY)
    drive(engine, [transition("lead.activity", MONDAY, "X", kind="page_view"), assigned(MONDAY + timedelta(hours=10), "A")])
    engine.advance(NEXT_MONDAY)
    [again] = windows_of(engine.observe(assigned(MONDAY + timedelta(hours=11), "B")))
    assert (again.kind, again.window.outcome, again.window.count, again.revision) == ("window_rejudged", "breached", 2, 2)
    # The same lead again changes nothing (distinct leads).
    assert windows_of(engine.observe(assigned(MONDAY + timedelta(hours=12), "B", owner="bo"))) == []


def test_an_older_event_makes_an_earlier_week_eligible_and_judges_it_with_what_was_counted():
    # Replay sees Tuesday's events first: the week of 2 November started before the first event,
    # so it is not judged ... until an event of Monday 00:00 arrives. The assignment of Tuesday,
    # counted all along, is in it.
    tuesday = MONDAY + timedelta(days=1, hours=10)
    engine = SlaEngine(POLICY)
    drive(engine, [transition("lead.activity", tuesday, "X", kind="page_view"), assigned(tuesday, "A")])
    engine.advance(NEXT_MONDAY + timedelta(days=7))
    assert [line["window_start"] for line in engine.outcome_lines(NEXT_MONDAY + timedelta(days=7))
            if line["sla"] == WEEKLY] == [z(NEXT_MONDAY)]
    judged = engine.observe(transition("lead.activity", MONDAY, "Y", kind="page_view"))
    assert [(e.kind, e.window.window_start, e.window.count) for e in judged if e.sla == WEEKLY] == [
        ("window_closed", MONDAY, 1)]


# --- readings where the contract is silent (README) ----------------------------------------

def test_an_ignored_event_starts_no_clock_but_still_stops_one():
    # The lead is already in sal: a backward lead.marketing_qualified is ignored and starts no
    # speed_to_lead clock; an ignored (backward) lead.accepted still answers sales_acceptance.
    ignored_mql = transition("lead.marketing_qualified", berlin(2026, 11, 2, 10), stage="sal", ignored="backward")
    assert lines_of(SPEED, [ignored_mql], berlin(2026, 11, 2, 12)) == []
    lines = lines_of(SALES, [assigned(berlin(2026, 11, 2, 10), stage="sql"),
                             transition("lead.accepted", berlin(2026, 11, 2, 11), stage="sql", ignored="backward")],
                     berlin(2026, 11, 3))
    assert lines[0]["outcome"] == "met"


def test_one_stop_event_stops_every_open_clock_of_its_sla_for_the_lead():
    # Re-entering mql after a rejection starts a second clock while the first is still open in
    # replay's clock time; one contact attempt in time for both meets both.
    items = [mql(berlin(2026, 11, 2, 10)), transition("lead.rejected", berlin(2026, 11, 2, 10, 5), to="rejected"),
             mql(berlin(2026, 11, 2, 10, 10), stage="rejected"), transition("contact.attempted", berlin(2026, 11, 2, 10, 40))]
    lines = lines_of(SPEED, items, berlin(2026, 11, 2, 12))
    assert [(line["outcome"], line["stopped_at"]) for line in lines] == [
        ("cancelled", z(berlin(2026, 11, 2, 10, 5))), ("met", z(berlin(2026, 11, 2, 10, 40)))]
    both_open = [mql(berlin(2026, 11, 2, 10), "L2"), mql(berlin(2026, 11, 2, 10, 20), "L2", stage="recycled"),
                 transition("contact.attempted", berlin(2026, 11, 2, 10, 50), "L2")]
    lines = lines_of(SPEED, both_open, berlin(2026, 11, 2, 12))
    assert [(line["outcome"], line["stopped_at"]) for line in lines] == [("met", z(berlin(2026, 11, 2, 10, 50)))] * 2


# --- late declarations are marked -----------------------------------------------------------

def test_a_breach_declared_more_than_an_hour_after_due_is_marked_late():
    engine = SlaEngine(POLICY)
    drive(engine, [mql(berlin(2026, 11, 2, 10)), mql(berlin(2026, 11, 2, 10), "L2")])
    engine.declaring_at = berlin(2026, 11, 2, 11, 30)  # the live service: the wall clock
    [on_time] = engine.observe(transition("contact.attempted", berlin(2026, 11, 2, 11, 20)))
    engine.declaring_at = berlin(2026, 12, 7, 9)  # a backfill of last month
    [history] = engine.observe(transition("contact.attempted", berlin(2026, 11, 2, 11, 20), "L2"))
    assert (on_time.kind, on_time.late, history.kind, history.late) == ("breached", False, "breached", True)
