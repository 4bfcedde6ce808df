"""Realistic lead traffic for load tests, fault tests and `leadflow bench`.

Each lead walks a plausible path (created → activities → scored → IQL → MQL → assigned →
accepted or rejected → contact attempts → meeting → SQL → opportunity → won or lost, or it is
recycled or disqualified on the way), about ten events a lead. Activity is skewed: a few leads
are very active (many page views and downloads), most are not. Leads overlap in time, so the
stream interleaves many leads the way a real one does. Deterministic for a seed.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

CHANNELS = ("website", "website", "website", "event", "referral", "outbound")
SEGMENTS = ("smb", "smb", "midmarket", "enterprise")
SOURCES = {"web": "website", "ma": "hubspot", "crm": "salesforce", "dialer": "dialer"}
TEAMS = ("sales-emea", "sales-na", "sales-dach")
OWNERS = tuple(f"rep-{i:02d}" for i in range(24))
ACTIVITY_KINDS = ("download", "page_view", "webinar", "email_click")
REJECT_REASONS = ("not_a_fit", "no_budget", "duplicate_contact", "student")
LOST_REASONS = ("price", "competitor", "no_decision")


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _lead_path(rng: random.Random, lead_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, source system, payload) for one lead, in order."""
    channel, segment = rng.choice(CHANNELS), rng.choice(SEGMENTS)
    team, owner = rng.choice(TEAMS), rng.choice(OWNERS)
    fit = rng.choices(("good", "poor", "unknown"), (5, 3, 2))[0]
    path: list[tuple[str, str, dict[str, Any]]] = [(
        "lead.created", SOURCES["web"] if channel == "website" else SOURCES["ma"],
        {"channel": channel, "segment": segment, "email": f"{lead_id.lower()}@example.com",
         "company": f"Company {lead_id}", "campaign": rng.choice(("spring", "webinar-q3", "trade-fair")),
         "country": rng.choice(("DE", "AT", "CH", "US", "BR", "CN"))},
    )]
    # Skew: most leads do one or two things, a few do dozens (paretovariate has a heavy tail).
    for _ in range(min(40, int(rng.paretovariate(1.6)))):
        path.append(("lead.activity", SOURCES["ma"], {"kind": rng.choice(ACTIVITY_KINDS),
                                                       "asset": f"asset-{rng.randrange(50)}",
                                                       "helpful": rng.random() < 0.7}))
    path.append(("lead.scored", SOURCES["ma"], {"score": rng.randrange(0, 100), "fit": fit}))
    path.append(("lead.information_qualified", SOURCES["ma"], {}))
    if rng.random() < 0.15:
        path.append(("lead.disqualified", SOURCES["ma"], {"reason": "spam"}))
        return path
    path.append(("lead.marketing_qualified", SOURCES["ma"], {"fit": fit}))
    path.append(("lead.assigned", SOURCES["crm"], {"owner": owner, "team": team}))
    if rng.random() < 0.2:
        path.append(("lead.rejected", SOURCES["crm"], {"reason": rng.choice(REJECT_REASONS)}))
        if rng.random() < 0.5:
            path.append(("lead.recycled", SOURCES["ma"], {"reason": "nurture"}))
        return path
    path.append(("lead.accepted", SOURCES["crm"], {"owner": owner}))
    attempts = rng.randint(1, 8)
    for _ in range(attempts):
        path.append(("contact.attempted", SOURCES["dialer"], {"channel": rng.choice(("phone", "email")), "owner": owner}))
    if rng.random() < 0.3:
        path.append(("lead.recycled", SOURCES["crm"], {"reason": "no_response"}))
        return path
    path.append(("contact.connected", SOURCES["dialer"], {"channel": "phone", "owner": owner}))
    path.append(("meeting.booked", SOURCES["crm"], {"owner": owner}))
    path.append(("lead.sales_qualified", SOURCES["crm"], {}))
    if rng.random() < 0.3:
        path.append(("deal.lost", SOURCES["crm"], {"reason": rng.choice(LOST_REASONS)}))
        return path
    path.append(("opportunity.created", SOURCES["crm"], {"opportunity_id": f"opp-{lead_id}",
                                                        "amount": rng.randrange(1, 200) * 500}))
    if rng.random() < 0.45:
        path.append(("deal.won", SOURCES["crm"], {"revenue": rng.randrange(1, 200) * 500, "currency": "EUR"}))
    else:
        path.append(("deal.lost", SOURCES["crm"], {"reason": rng.choice(LOST_REASONS)}))
    return path


def generate_events(
    count: int, seed: int = 7, start: datetime | None = None, concurrent_leads: int = 2000,
    lead_prefix: str = "L", mean_gap_seconds: float = 2.0,
) -> Iterator[dict[str, Any]]:
    """Yield `count` valid envelopes (JSON-ready dicts) in event-time order.

    `concurrent_leads` leads are in flight at once; when one finishes its path a new one
    starts, so the number of distinct leads is about count / 10.
    """
    rng = random.Random(seed)
    now = start or datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
    in_flight: list[tuple[str, list[tuple[str, str, dict[str, Any]]], int]] = []
    next_lead = 0
    emitted = 0
    while emitted < count:
        while len(in_flight) < concurrent_leads:
            lead_id = f"{lead_prefix}{next_lead:08d}"
            next_lead += 1
            in_flight.append((lead_id, _lead_path(rng, lead_id), 0))
        slot = rng.randrange(len(in_flight))
        lead_id, path, step = in_flight[slot]
        etype, source, payload = path[step]
        now += timedelta(seconds=rng.expovariate(1.0 / mean_gap_seconds))
        yield {
            "event_id": f"{lead_id}-{step:03d}",
            "lead_id": lead_id,
            "type": etype,
            "occurred_at": _fmt(now),
            "source": source,
            "payload": payload,
        }
        emitted += 1
        if step + 1 < len(path):
            in_flight[slot] = (lead_id, path, step + 1)
        else:
            in_flight[slot] = in_flight[-1]
            in_flight.pop()
