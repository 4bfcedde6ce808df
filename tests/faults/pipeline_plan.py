"""What the pipeline fault suite sends, decided before it starts (deterministic for a seed).

Two kinds of leads, each sent on one path (HTTP or leadflow.inbound) so its own events keep their
order end to end:
- backfill leads: the synthetic month of services/lifecycle/synthetic.py (event time 2026-11-02 to
  11-16), sent throughout the run: their clocks were due long ago, their weeks and month are over,
  so the live monitor judges them by the wall clock before (some of) their stops arrive: every
  one of those is a late arrival, and their `lead.assigned` land in windows already judged;
- live leads: the same paths with event time now (minutes compressed into seconds), against a
  policy whose speed_to_lead is due 20 s after the MQL on an always-open calendar; a share of their
  events is held back 15-45 s after it occurred (a late arrival after the breach was declared).
A share of events is sent twice (the same event_id again, a duplicate). One preamble event that
occurred before every other is sent and processed first, so the first event the SLA monitor sees
(which decides the first window it judges) is the one replay sees first too.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from services.common.envelope import Event
from services.lifecycle.synthetic import START, one_lead
from tests.integration.sla.sla_harness import SHORT_POLICY

HTTP, INBOUND = "http", "inbound"
SPEED_TO_LEAD_DUE_S = 20
# event-time minutes of the synthetic paths become this many times fewer seconds for live leads
LIVE_COMPRESSION = 120
PREAMBLE_AT = datetime(2026, 10, 31, 12, 0, tzinfo=timezone.utc)   # before Nov's first week and month

POLICY = SHORT_POLICY.format(due=f"{SPEED_TO_LEAD_DUE_S}s")


@dataclass(frozen=True)
class Send:
    at_s: float          # seconds after the stream starts
    lead: int            # index into Plan.leads
    event: Event
    duplicate: bool      # a re-send of an event already in the plan


@dataclass
class Lead:
    lead_id: str
    path: str
    live: bool


@dataclass
class Plan:
    seed: int
    t0: datetime
    duration_s: float
    preamble: Event
    leads: list[Lead] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)       # sorted by at_s
    invalid_inbound: list[bytes] = field(default_factory=list)

    @property
    def last_occurred_at(self) -> datetime:
        return max(s.event.occurred_at for s in self.sends)


def build_plan(n_events: int, duration_s: float, seed: int, t0: datetime, *, live_share: float = 0.4,
               late_share: float = 0.03, duplicate_share: float = 0.01, invalid_inbound: int = 25) -> Plan:
    rng = random.Random(seed)
    run = f"{seed:x}"
    preamble = Event(f"pre-{run}", f"PRE-{run}", "lead.created", PREAMBLE_AT, "website",
                     {"channel": "event", "segment": "smb"})
    plan = Plan(seed, t0, duration_s, preamble)
    sends: list[Send] = []
    distinct = 0
    while distinct < n_events:   # distinct events; the re-sent ones come on top
        index = len(plan.leads)
        live = rng.random() < live_share
        lead_id = f"{'V' if live else 'B'}{run}-{index:06d}"
        plan.leads.append(Lead(lead_id, HTTP if rng.random() < 0.5 else INBOUND, live))
        start_s = rng.uniform(0, duration_s * 0.85)
        if live:
            base = t0 + timedelta(seconds=start_s)
            events = one_lead(rng, lead_id, base)
            first = events[0].occurred_at
            # a lead's event time spans at most a tenth of the run (the run must end)
            span = (events[-1].occurred_at - first).total_seconds()
            squeeze = max(LIVE_COMPRESSION, span / (0.1 * duration_s))
            events = [Event(e.event_id, e.lead_id, e.type, base + (e.occurred_at - first) / squeeze,
                            e.source, e.payload) for e in events]
        else:
            events = one_lead(rng, lead_id, START + timedelta(minutes=rng.uniform(0, 60 * 24 * 14)))
        at = start_s
        late = live and start_s < 0.6 * duration_s and rng.random() < late_share * len(events)
        late_at = rng.randrange(1, len(events)) if late and len(events) > 1 else None
        for number, event in enumerate(events):
            if live:
                at = max(at, (event.occurred_at - t0).total_seconds())
                if number == late_at:   # held back past the due time: the breach is declared first
                    at += rng.uniform(SPEED_TO_LEAD_DUE_S, SPEED_TO_LEAD_DUE_S + 15)
            else:
                at += rng.uniform(0.05, 1.5)
            sends.append(Send(at, index, event, False))
            distinct += 1
            if rng.random() < duplicate_share:
                sends.append(Send(at, index, event, True))
    # Stable: a lead's sends keep their order where times tie.
    plan.sends = sorted(sends, key=lambda s: s.at_s)
    for i in range(invalid_inbound):
        bad = {"event_id": f"bad-{run}-{i}", "lead_id": f"BAD{run}-{i}", "type": "lead.teleported",
               "occurred_at": "2026-12-01T00:00:00Z", "source": "website", "payload": {}}
        plan.invalid_inbound.append(json.dumps(bad).encode())
    return plan
