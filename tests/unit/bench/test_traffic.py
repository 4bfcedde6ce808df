from __future__ import annotations

from collections import Counter

from services.bench.traffic import generate_events
from services.common.envelope import parse_event


def test_same_seed_same_traffic():
    assert list(generate_events(500, seed=3)) == list(generate_events(500, seed=3))
    assert list(generate_events(500, seed=3)) != list(generate_events(500, seed=4))


def test_every_event_is_a_valid_envelope_in_time_order():
    events = [parse_event(e) for e in generate_events(5000, seed=11)]
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    assert len({e.event_id for e in events}) == len(events)


def test_about_ten_events_a_lead_with_a_skewed_few():
    events = list(generate_events(20000, seed=5, concurrent_leads=500))
    per_lead = Counter(e["lead_id"] for e in events)
    mean = len(events) / len(per_lead)
    assert 7 <= mean <= 15
    assert max(per_lead.values()) >= 4 * mean
    assert len({e["type"] for e in events}) == 17


def test_a_lead_starts_with_created():
    first_type: dict[str, str] = {}
    for e in generate_events(3000, seed=2):
        first_type.setdefault(e["lead_id"], e["type"])
    assert set(first_type.values()) == {"lead.created"}
