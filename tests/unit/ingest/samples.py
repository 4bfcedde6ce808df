"""Sample events shared by the validation and OpenAPI tests: one full valid payload per type, and
invalid payloads with the field and the reason parse_event must give."""
from __future__ import annotations

from typing import Any

# One full valid payload per type (every known field set).
FULL_PAYLOADS: dict[str, dict[str, Any]] = {
    "lead.created": {"channel": "website", "segment": "smb", "email": "a@example.com", "company": "Acme",
                     "campaign": "q4-webinar", "country": "DE"},
    "lead.activity": {"kind": "download", "asset": "whitepaper.pdf", "helpful": True},
    "lead.scored": {"score": 87, "fit": "good"},
    "lead.information_qualified": {},
    "lead.marketing_qualified": {"fit": "poor"},
    "lead.assigned": {"owner": "ana", "team": "emea"},
    "lead.accepted": {"owner": "ana"},
    "lead.rejected": {"reason": "no_budget"},
    "contact.attempted": {"channel": "phone", "owner": "ana"},
    "contact.connected": {"channel": "email", "owner": "ana"},
    "meeting.booked": {"owner": "ana", "scheduled_for": "2026-11-05T14:00:00+01:00"},
    "lead.sales_qualified": {},
    "opportunity.created": {"opportunity_id": "opp-1", "amount": 12000.5},
    "deal.won": {"revenue": 12000, "currency": "EUR"},
    "deal.lost": {"reason": "competitor"},
    "lead.recycled": {"reason": "no_response"},
    "lead.disqualified": {"reason": "student"},
}

# (type, payload, field named, words in the reason): at least two per type.
INVALID_PAYLOADS: list[tuple[str, Any, str, str]] = [
    ("lead.created", {"channel": 5}, "payload.channel", "must be a string, got integer"),
    ("lead.created", {"segment": ["smb"]}, "payload.segment", "got array"),
    ("lead.created", {"email": True}, "payload.email", "got boolean"),
    ("lead.activity", {}, "payload.kind", "is required for lead.activity"),
    ("lead.activity", {"kind": ""}, "payload.kind", "must not be empty"),
    ("lead.activity", {"kind": " \t\u00a0"}, "payload.kind", "must not be empty"),
    ("lead.activity", {"kind": None}, "payload.kind", "is required"),
    ("lead.activity", {"kind": "download", "helpful": "yes"}, "payload.helpful", "must be a boolean, got string"),
    ("lead.activity", {"kind": "download", "helpful": 1}, "payload.helpful", "must be a boolean, got integer"),
    ("lead.activity", {"kind": "download", "asset": 3}, "payload.asset", "must be a string"),
    ("lead.scored", {}, "payload.score", "is required for lead.scored"),
    ("lead.scored", {"score": "87"}, "payload.score", "must be an integer, got string"),
    ("lead.scored", {"score": True}, "payload.score", "must be an integer, got boolean"),
    ("lead.scored", {"score": 87.5}, "payload.score", "must be an integer, got number"),
    ("lead.scored", {"score": 87, "fit": "great"}, "payload.fit", "must be one of good, poor, unknown"),
    ("lead.scored", {"score": 87, "fit": ""}, "payload.fit", "must be one of"),
    ("lead.scored", {"score": 87, "fit": "GOOD"}, "payload.fit", "must be one of"),
    ("lead.scored", {"score": 87, "fit": 1}, "payload.fit", "must be a string"),
    ("lead.information_qualified", [], "payload", "must be an object, got array"),
    ("lead.information_qualified", "none", "payload", "must be an object, got string"),
    ("lead.marketing_qualified", {"fit": "excellent"}, "payload.fit", "must be one of"),
    ("lead.marketing_qualified", {"fit": True}, "payload.fit", "must be a string, got boolean"),
    ("lead.assigned", {"team": "emea"}, "payload.owner", "is required for lead.assigned"),
    ("lead.assigned", {"owner": "ana"}, "payload.team", "is required for lead.assigned"),
    ("lead.assigned", {"owner": "", "team": "emea"}, "payload.owner", "must not be empty"),
    ("lead.assigned", {"owner": "ana", "team": 42}, "payload.team", "must be a string, got integer"),
    ("lead.accepted", {"owner": 5}, "payload.owner", "must be a string"),
    ("lead.accepted", {"owner": {}}, "payload.owner", "got object"),
    ("lead.rejected", {}, "payload.reason", "is required for lead.rejected"),
    ("lead.rejected", {"reason": ""}, "payload.reason", "must not be empty"),
    ("lead.rejected", {"reason": ["x"]}, "payload.reason", "must be a string"),
    ("contact.attempted", {"owner": "ana"}, "payload.channel", "is required for contact.attempted"),
    ("contact.attempted", {"channel": ""}, "payload.channel", "must not be empty"),
    ("contact.attempted", {"channel": "phone", "owner": 1}, "payload.owner", "must be a string"),
    ("contact.connected", {}, "payload.channel", "is required for contact.connected"),
    ("contact.connected", {"channel": False}, "payload.channel", "must be a string, got boolean"),
    ("meeting.booked", {"scheduled_for": "tomorrow"}, "payload.scheduled_for", "RFC 3339"),
    ("meeting.booked", {"scheduled_for": 1790000000}, "payload.scheduled_for", "must be an RFC 3339 string"),
    ("meeting.booked", {"scheduled_for": "2026-11-05T14:00:00"}, "payload.scheduled_for", "with offset"),
    ("meeting.booked", {"owner": 3}, "payload.owner", "must be a string"),
    ("lead.sales_qualified", 5, "payload", "must be an object, got integer"),
    ("lead.sales_qualified", True, "payload", "must be an object, got boolean"),
    ("opportunity.created", {"amount": 100}, "payload.opportunity_id", "is required for opportunity.created"),
    ("opportunity.created", {"opportunity_id": 123}, "payload.opportunity_id", "must be a string, got integer"),
    ("opportunity.created", {"opportunity_id": "o", "amount": "1000"}, "payload.amount", "must be a number"),
    ("opportunity.created", {"opportunity_id": "o", "amount": True}, "payload.amount", "got boolean"),
    ("deal.won", {}, "payload.revenue", "is required for deal.won"),
    ("deal.won", {"revenue": -1}, "payload.revenue", "must be at least 0, got -1"),
    ("deal.won", {"revenue": -0.01}, "payload.revenue", "must be at least 0"),
    ("deal.won", {"revenue": "100"}, "payload.revenue", "must be a number, got string"),
    ("deal.won", {"revenue": True}, "payload.revenue", "must be a number, got boolean"),
    ("deal.won", {"revenue": float("inf")}, "payload.revenue", "must be a finite number"),
    ("deal.won", {"revenue": float("nan")}, "payload.revenue", "must be a finite number"),
    ("deal.won", {"revenue": 10, "currency": 978}, "payload.currency", "must be a string"),
    ("deal.lost", {}, "payload.reason", "is required for deal.lost"),
    ("deal.lost", {"reason": " \t"}, "payload.reason", "must not be empty"),
    ("lead.recycled", {}, "payload.reason", "is required for lead.recycled"),
    ("lead.recycled", {"reason": 0}, "payload.reason", "must be a string"),
    ("lead.disqualified", {"reason": None}, "payload.reason", "is required for lead.disqualified"),
    ("lead.disqualified", {"reason": {"code": 1}}, "payload.reason", "must be a string, got object"),
]


# occurred_at values parse_event refuses.
BAD_OCCURRED_AT: list[str] = [
    "2026-11-02T08:00:00",  # naive
    "2026-11-02",
    "2026-11-02T08:00Z",
    "2026-11-02T08:00:00+0100",
    "2026-11-02T08:00:00 Z",
    "02.11.2026 08:00",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-02T24:00:00Z",
    "2026-11-02T08:00:60Z",  # a leap second is RFC 3339 but not a datetime here
    "2026-11-02T08:00:00+24:00",
    "2026-11-02T08:00:00.Z",
    "2026-11-02T08:00:00.1234567890Z",
    "2026-11-02T08:00:00Z\n",
    " 2026-11-02T08:00:00Z",
    "\u0662\u0660\u0662\u0666-11-02T08:00:00Z",  # Arabic-Indic digits
    "9999-12-31T23:59:59-01:00",  # past year 9999 in UTC
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "",
]
# Of those, the ones a JSON Schema pattern cannot catch (day of month, UTC range at year edges).
CALENDAR_ONLY_BAD_OCCURRED_AT = {"2026-02-30T00:00:00Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"}


def envelope(etype: str = "lead.scored", payload: Any = None, **fields: Any) -> dict[str, Any]:
    raw = {
        "event_id": "e1", "lead_id": "L1", "type": etype, "occurred_at": "2026-11-02T08:00:00Z",
        "source": "hubspot", "payload": FULL_PAYLOADS[etype] if payload is None else payload,
    }
    raw.update(fields)
    return raw
