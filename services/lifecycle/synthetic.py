"""Plausible synthetic lead event streams, for the fault tests and quick throughput runs.

`lead_stream(n_leads, seed=...)` gives the events of n leads (about 10 each) in one log order:
each lead follows a realistic path (created, activity, scoring, MQL, assignment, contact
attempts, acceptance or rejection, opportunity, won or lost, recycling...), the leads' events are
interleaved, and a small share of events is sent twice (a duplicate event_id) or arrives late
(a backward move the state machine ignores). Deterministic for a seed.

`produce_events(settings, events)` writes them to leadflow.events (Avro, keyed by lead id) fast.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

from services.common.envelope import Event

CHANNELS = ("website", "website", "website", "event", "referral", "outbound")
SEGMENTS = ("smb", "smb", "midmarket", "enterprise")
TEAMS = {"smb": "sales-smb", "midmarket": "sales-mm", "enterprise": "sales-ent"}
REJECT_REASONS = ("no_fit", "no_budget", "bad_timing", "competitor", "Bad Data")
START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def one_lead(rng: random.Random, lead_id: str, t0: datetime) -> list[Event]:
    """The events of one lead whose first event occurs shortly after t0, in its order."""
    events: list[Event] = []
    t = t0

    def add(etype: str, payload: dict | None = None, *, minutes: float = 30, source: str = "hubspot") -> None:
        nonlocal t
        t = t + timedelta(minutes=rng.uniform(1, minutes))
        events.append(Event(f"{lead_id}-e{len(events) + 1}", lead_id, etype, t, source, payload or {}))

    segment = rng.choice(SEGMENTS)
    channel = rng.choice(CHANNELS)
    if rng.random() < 0.95:   # a few leads are created implicitly by their first event
        add("lead.created", {"channel": channel, "segment": segment, "email": f"{lead_id.lower()}@example.com",
                             "company": f"Company {lead_id}", "country": rng.choice(["DE", "FR", "US"])},
            minutes=5, source="website")
    for _ in range(rng.randint(0, 3)):
        add("lead.activity", {"kind": rng.choice(["download", "page_view", "webinar", "email_click"]),
                              "helpful": rng.random() < 0.5}, source="website")
    fit = rng.choice(["good", "good", "poor", "unknown"])
    add("lead.scored", {"score": rng.randint(0, 100), "fit": fit})
    if rng.random() < 0.5:
        add("lead.information_qualified")
    if rng.random() < 0.15:
        return events   # stays early in the funnel
    add("lead.marketing_qualified", {"fit": fit})
    if rng.random() < 0.1:
        add("lead.information_qualified")   # late: a backward move, ignored
    owner = f"rep-{rng.randint(1, 12)}"
    add("lead.assigned", {"owner": owner, "team": TEAMS[segment]})
    for _ in range(rng.randint(0, 3)):
        add("contact.attempted", {"channel": rng.choice(["phone", "email"]), "owner": owner}, source="dialer")
    roll = rng.random()
    if roll < 0.2:
        add("lead.rejected", {"reason": rng.choice(REJECT_REASONS)}, source="salesforce")
        if rng.random() < 0.5:
            add("lead.recycled", {"reason": "no_response"}, source="salesforce")
        return events
    if roll < 0.3:
        add("lead.recycled", {"reason": "no_response"}, source="salesforce")
        return events
    add("lead.accepted", {"owner": owner}, source="salesforce")
    add("contact.connected", {"channel": "phone", "owner": owner}, source="dialer")
    if rng.random() < 0.5:
        add("meeting.booked", {"owner": owner}, source="salesforce")
    if rng.random() < 0.3:
        add("deal.lost", {"reason": "no_budget"}, source="salesforce")
        return events
    add("lead.sales_qualified", source="salesforce")
    if rng.random() < 0.3:
        return events
    add("opportunity.created", {"opportunity_id": f"opp-{lead_id}", "amount": rng.randint(1, 100) * 1000},
        source="salesforce")
    if rng.random() < 0.5:
        add("deal.won", {"revenue": rng.randint(1, 100) * 1000, "currency": "EUR"}, source="salesforce")
        if rng.random() < 0.1:
            add("lead.marketing_qualified", {"fit": "good"})   # after customer: final, ignored
    else:
        add("deal.lost", {"reason": "competitor"}, source="salesforce")
    return events


def lead_stream(n_leads: int, *, seed: int = 1, duplicate_share: float = 0.01, prefix: str = "L") -> list[Event]:
    """The events of n_leads leads in one log order (each lead's own events in order)."""
    rng = random.Random(seed)
    per_lead = [
        one_lead(rng, f"{prefix}{seed}-{i:07d}", START + timedelta(minutes=rng.uniform(0, 60 * 24 * 14)))
        for i in range(n_leads)
    ]
    # Interleave: repeatedly take the next event of a random lead still having events.
    cursors = [0] * n_leads
    alive = list(range(n_leads))
    out: list[Event] = []
    while alive:
        k = rng.randrange(len(alive))
        i = alive[k]
        events = per_lead[i]
        out.append(events[cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(events):
            alive[k] = alive[-1]
            alive.pop()
        # A re-sent event: the same event again, a little later in the same lead's order.
        if duplicate_share and rng.random() < duplicate_share:
            out.append(events[cursors[i] - 1])
    return out


async def produce_events(settings, events: Iterable[Event], *, topic: str | None = None) -> int:
    """Write events to leadflow.events (Avro single-object, key lead_id), in order per lead.
    Returns how many were written."""
    from services.common.avro_codec import AvroCodec, event_to_avro
    from services.common.kafka import lead_key, make_producer, send_batched

    topic = topic or settings.topics.events
    codec = AvroCodec("event_envelope")
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    n = 0
    try:
        records = [(lead_key(event.lead_id), codec.encode(event_to_avro(event))) for event in events]
        n = len(records)
        futures: list = []
        await send_batched(producer, topic, records, len(await producer.partitions_for(topic)), futures)
        for fut in futures:
            await fut
    finally:
        await producer.stop()
    return n


def expected_transitions(events: Sequence[Event]):
    """What the store must hold for a log: the domain run over it (duplicates excluded)."""
    from services.lifecycle.domain import run_log

    return [t for t in run_log(events) if t.version is not None]
