"""How the demo cuts the month for sending: every event once, each lead's events in their log
order, and within a round no lead on both routes (so a lead's HTTP and Kafka events cannot
overtake each other on their way to leadflow.events)."""
from __future__ import annotations

from datetime import datetime, timezone

from services.demo.stream import days_of, rounds_of
from services.simulator import route_of, simulate_month

MONTH = simulate_month(datetime(2026, 12, 7, 23, 0, tzinfo=timezone.utc), seed=3)


def test_days_then_rounds_send_every_event_once_in_each_leads_order():
    sent = [e for events in days_of(MONTH).values() for round_events in rounds_of(events) for e in round_events]
    assert sorted(e["event_id"] for e in sent) == sorted(e["event_id"] for e in MONTH.events)
    for lead in {e["lead_id"] for e in MONTH.events[:200]}:
        assert [e["event_id"] for e in sent if e["lead_id"] == lead] == \
               [e["event_id"] for e in MONTH.events if e["lead_id"] == lead]


def test_days_follow_the_log_and_the_late_batch_arrives_on_its_delivery_day():
    days = list(days_of(MONTH))
    assert days == sorted(days) and len(days) >= 30
    late_days = {day for day, events in days_of(MONTH).items() for e in events if e["event_id"] in MONTH.late_event_ids}
    assert late_days == {MONTH.late_batch_delivered_at.astimezone(timezone.utc).strftime("%Y-%m-%d")}


def test_within_a_round_a_lead_uses_one_route():
    for events in days_of(MONTH).values():
        for round_events in rounds_of(events):
            routes: dict[str, set[str]] = {}
            for e in round_events:
                routes.setdefault(e["lead_id"], set()).add(route_of(e))
            assert all(len(r) == 1 for r in routes.values())
