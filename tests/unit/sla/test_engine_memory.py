"""A long run of the live engine (keep_history=False): what it holds stays proportional to the
leads in flight, not to every lead it ever saw.

200 000 events of `leadflow bench` traffic (500 leads in flight at a time, one event a minute on
average: about 140 days of clock time and 15 000 leads) go through the real lifecycle `run_log`
and the engine, driven the way the service drives it: advance to the clock time, observe, and
persist `take_changes()` every few hundred events into a dict that stands for `sla_clocks`.

What may remain, by contract §4, and is counted apart: a contact_attempts clock (no due time) of
a lead left in `rejected` stays open until the lead is recycled or disqualified, which in this
traffic never happens (about 8% of leads). Everything else is checked against a bound that does
not grow with the number of leads.
"""
from __future__ import annotations

from itertools import islice

import pytest

from services.bench.traffic import OWNERS, generate_events
from services.common.envelope import parse_event
from services.lifecycle.domain import run_log
from services.sla_monitor.domain import SlaEngine, parse_policy
from services.sla_monitor.domain.engine import _ClockQueue

EVENTS = 200_000
IN_FLIGHT = 500
CHECK_EVERY = 10_000
PERSIST_EVERY = 500


def parked(clock, stage_of) -> bool:
    """Open with no due time and its lead in `rejected`: undecided until the lead moves again."""
    return clock.outcome is None and clock.due_at is None and stage_of[clock.lead_id] == "rejected"


@pytest.mark.slow
def test_live_state_stays_bounded_over_200k_events():
    policy = parse_policy('correction_window = "30d"\n', "thirty.toml")  # what a long-running monitor sets
    engine = SlaEngine(policy, keep_history=False)
    events = (parse_event(e) for e in generate_events(EVENTS, seed=11, concurrent_leads=IN_FLIGHT,
                                                      mean_gap_seconds=60))
    stage_of: dict[str, str] = {}
    rows: dict[tuple, dict] = {}  # the sla_clocks table: clock key -> latest snapshot
    started = expired = 0
    checks = []
    latest = None
    for number, transition in enumerate(islice(run_log(events), EVENTS), start=1):
        at = transition.event.occurred_at
        latest = at if latest is None or at > latest else latest
        for emission in engine.advance(latest) + engine.observe(transition):
            started += emission.kind == "started"
        if transition.version is not None:
            stage_of[transition.lead_id] = transition.to_stage
        if number % PERSIST_EVERY == 0:
            for row in engine.take_changes().clocks:
                rows[(row["sla"], row["lead_id"], row["start_event_id"])] = row
                expired += row["expired"]
        if number % CHECK_EVERY == 0:
            live = list(engine.live_clocks())
            stats = engine.memory_stats()
            # Breaches wait for an in-time stop until their correction window passed (checked
            # below), whatever stops came after due; the rest belong to leads in flight.
            bounded = [clock for clock in live if not parked(clock, stage_of) and clock.outcome is None]
            breached = [clock for clock in live if clock.outcome == "breached"]
            open_with_due = [clock for clock in live if clock.outcome is None and clock.due_at is not None]
            checks.append((number, len(stage_of), started, len(live), len(bounded)))
            # The clocks that can still change, apart from the parked ones: those of leads in
            # flight, and breaches still within their correction window.
            assert len(bounded) <= 2 * IN_FLIGHT, checks[-1]
            assert all(clock.due_at + policy.correction_window >= engine.now for clock in breached)
            # No index entry or queue entry outlives its clocks by more than the compaction slack.
            assert stats["live_clocks"] == len(live) and stats["leads"] <= len(live)
            assert stats["due_queue"] <= 2 * len(open_with_due) + _ClockQueue.COMPACT_MIN
            assert stats["expiry_queue"] <= 2 * len(breached) + _ClockQueue.COMPACT_MIN
            # Windows stay until the correction window passed their end (a late lead re-judges
            # them): at most this and last month per owner, and the weeks of the last 30 days.
            assert stats["windows"] <= 2 * len(OWNERS) + 7
            assert stats["history"] == 0
            # What the service loads at start (rows not final) is exactly the live state.
            assert sum(1 for row in rows.values() if not row["final"]) == len(live)

    leads, clocks_started = len(stage_of), started
    print("\nevents, leads, clocks started, live clocks, live clocks not parked:")
    for check in checks:
        print(*check)
    assert leads > 14_000 and clocks_started > 35_000
    assert expired > 300  # breaches without a stop did expire and were reported as final
    final_live = checks[-1][4]
    assert final_live < leads / 20 and final_live < clocks_started / 50
    # Flat, not creeping: the second half of the run holds no more than the first half did once
    # the first correction window had passed (clock time > 30 days, from about 45 000 events).
    settled = [check[4] for check in checks if check[0] >= 50_000]
    half = len(settled) // 2
    assert max(settled[half:]) <= 1.25 * max(settled[:half])
