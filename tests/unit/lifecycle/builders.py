"""Valid events for the lifecycle tests, built through `parse_event` so they are what services see."""
from __future__ import annotations

import itertools
from typing import Any

from services.common.envelope import Event, parse_event

# The smallest payload each type accepts (contract §2 required fields).
MINIMAL_PAYLOAD: dict[str, dict[str, Any]] = {
    "lead.created": {},
    "lead.activity": {"kind": "download"},
    "lead.scored": {"score": 40},
    "lead.information_qualified": {},
    "lead.marketing_qualified": {},
    "lead.assigned": {"owner": "ana", "team": "emea-smb"},
    "lead.accepted": {},
    "lead.rejected": {"reason": "no_fit"},
    "contact.attempted": {"channel": "phone"},
    "contact.connected": {"channel": "phone"},
    "meeting.booked": {},
    "lead.sales_qualified": {},
    "opportunity.created": {"opportunity_id": "opp-1"},
    "deal.won": {"revenue": 12000},
    "deal.lost": {"reason": "price"},
    "lead.recycled": {"reason": "no_response"},
    "lead.disqualified": {"reason": "student"},
}

_event_numbers = itertools.count(1)


def make_event(
    etype: str,
    lead_id: str = "L1",
    *,
    event_id: str | None = None,
    occurred_at: str = "2026-11-02T08:00:00Z",
    **payload: Any,
) -> Event:
    """A valid event of `etype`; payload fields given override the minimal ones."""
    return parse_event({
        "event_id": event_id or f"ev-{next(_event_numbers)}",
        "lead_id": lead_id,
        "type": etype,
        "occurred_at": occurred_at,
        "source": "test",
        "payload": {**MINIMAL_PAYLOAD[etype], **payload},
    })
