"""A known history for the report tests: nine leads around ISO week 2026-W46 (Monday 2026-11-09
to Sunday 2026-11-15, Europe/Berlin = UTC+1, business hours 08:00-16:00 UTC) and a policy with
small targets, so that every figure of `leadflow report --week 2026-W46` can be worked out by hand
(the expected values and their arithmetic are in test_report_known_history.py)."""
from __future__ import annotations

from services.common.timefmt import parse_rfc3339
from services.sla_monitor.domain import parse_policy
from tests.integration.report.history import ev

NOW = parse_rfc3339("2026-11-16T12:00:00Z")   # Monday of W47, 13:00 in Berlin

POLICY_TOML = """
description = "report test policy: small targets"
[calendars.default]
timezone = "Europe/Berlin"
working_days = ["mon", "tue", "wed", "thu", "fri"]
opens = "09:00"
closes = "17:00"
[slas.speed_to_lead]
due = "1h"
business_time = true
scope = { channel = ["website"] }
[slas.sales_acceptance]
business_days = 2
[slas.contact_attempts]
required_attempts = 3
[[slas.contact_attempts.overrides]]
when = { segment = "enterprise" }
required_attempts = 4
[slas.closed_loop_feedback]
due = "7d"
business_time = false
[slas.marketing_weekly_volume]
target = 4
min_fit_share = 0.5
fit = "good"
[slas.rep_monthly_volume]
target = 6
"""
POLICY = parse_policy(POLICY_TOML, "report-test-policy.toml")


def created(i: str, lead: str, at: str, channel: str, segment: str, campaign: str | None):
    payload = {"channel": channel, "segment": segment, "email": f"{lead.lower()}@example.com",
               "company": f"Company {lead}"}
    if campaign:
        payload["campaign"] = campaign
    return ev(i, lead, "lead.created", at, payload, "website" if channel == "website" else "hubspot")


def assigned(i, lead, at, owner, team):
    return ev(i, lead, "lead.assigned", at, {"owner": owner, "team": team}, "salesforce")


def attempt(i, lead, at, owner):
    return ev(i, lead, "contact.attempted", at, {"channel": "phone", "owner": owner}, "dialer")


def download(i, lead, at, asset, helpful=None):
    payload = {"kind": "download", "asset": asset}
    if helpful is not None:
        payload["helpful"] = helpful
    return ev(i, lead, "lead.activity", at, payload)


# In log order. Times are UTC; Berlin is one hour ahead.
EVENTS = [
    # L0: before the period. Its opportunity (W45) has had no result since its due time (Nov 9).
    created("l0-c", "L0", "2026-10-30T10:00:00Z", "event", "smb", None),
    ev("l0-o", "L0", "opportunity.created", "2026-11-02T10:00:00Z", {"opportunity_id": "O0", "amount": 5000}),
    # Monday 11-09
    created("l1-c", "L1", "2026-11-09T08:00:00Z", "website", "smb", "launch"),
    download("l1-d", "L1", "2026-11-09T08:05:00Z", "guide.pdf", True),
    ev("l1-m", "L1", "lead.marketing_qualified", "2026-11-09T08:10:00Z", {"fit": "good"}),
    assigned("l1-a", "L1", "2026-11-09T08:20:00Z", "ana", "east"),
    attempt("l1-t", "L1", "2026-11-09T08:40:00Z", "ana"),
    ev("l1-x", "L1", "contact.connected", "2026-11-09T09:00:00Z", {"channel": "phone", "owner": "ana"}, "dialer"),
    created("l2-c", "L2", "2026-11-09T15:30:00Z", "website", "midmarket", "launch"),
    download("l2-d", "L2", "2026-11-09T15:35:00Z", "guide.pdf"),
    ev("l2-m", "L2", "lead.marketing_qualified", "2026-11-09T15:40:00Z", {"fit": "good"}),
    # Tuesday 11-10
    created("l3-c", "L3", "2026-11-10T06:55:00Z", "website", "smb", "webinar"),
    download("l3-d", "L3", "2026-11-10T06:58:00Z", "pricing.pdf", True),
    ev("l3-m", "L3", "lead.marketing_qualified", "2026-11-10T07:00:00Z", {"fit": "poor"}),
    assigned("l3-a", "L3", "2026-11-10T07:30:00Z", "cy", "west"),
    assigned("l2-a", "L2", "2026-11-10T08:00:00Z", "ben", "east"),
    attempt("l3-t", "L3", "2026-11-10T08:30:00Z", "cy"),
    created("l4-c", "L4", "2026-11-10T09:00:00Z", "event", "enterprise", "webinar"),
    attempt("l2-t1", "L2", "2026-11-10T09:00:00Z", "ben"),
    ev("l4-i", "L4", "lead.information_qualified", "2026-11-10T09:02:00Z"),
    ev("l4-m", "L4", "lead.marketing_qualified", "2026-11-10T09:05:00Z", {"fit": "good"}),
    assigned("l4-a", "L4", "2026-11-10T09:10:00Z", "ana", "east"),
    ev("l1-s", "L1", "lead.accepted", "2026-11-10T10:00:00Z", {"owner": "ana"}, "salesforce"),
    attempt("l4-t1", "L4", "2026-11-10T10:00:00Z", "ana"),
    attempt("l2-t2", "L2", "2026-11-10T11:00:00Z", "ben"),
    # Wednesday 11-11
    created("l5-c", "L5", "2026-11-11T08:00:00Z", "referral", "smb", "launch"),
    ev("l5-m", "L5", "lead.marketing_qualified", "2026-11-11T08:05:00Z", {"fit": "poor"}),
    assigned("l5-a", "L5", "2026-11-11T08:10:00Z", "ben", "east"),
    ev("l3-r", "L3", "lead.rejected", "2026-11-11T09:00:00Z", {"reason": "no_budget"}, "salesforce"),
    created("l7-c", "L7", "2026-11-11T10:00:00Z", "event", "midmarket", "webinar"),
    ev("l1-q", "L1", "lead.sales_qualified", "2026-11-11T10:00:00Z", {}, "salesforce"),
    attempt("l4-t2", "L4", "2026-11-11T10:00:00Z", "ana"),
    ev("l7-m", "L7", "lead.marketing_qualified", "2026-11-11T10:05:00Z", {"fit": "good"}),
    assigned("l7-a", "L7", "2026-11-11T10:10:00Z", "cy", "west"),
    ev("l7-s", "L7", "lead.accepted", "2026-11-11T11:00:00Z", {"owner": "cy"}, "salesforce"),
    attempt("l2-t3", "L2", "2026-11-11T11:00:00Z", "ben"),
    ev("l7-x", "L7", "contact.connected", "2026-11-11T11:30:00Z", {"channel": "phone", "owner": "cy"}, "dialer"),
    # Thursday 11-12
    created("l6-c", "L6", "2026-11-12T08:00:00Z", "website", "smb", "webinar"),
    ev("l6-m", "L6", "lead.marketing_qualified", "2026-11-12T08:00:00Z", {"fit": "good"}),
    assigned("l6-a", "L6", "2026-11-12T08:30:00Z", "cy", "west"),
    ev("l1-o", "L1", "opportunity.created", "2026-11-12T10:00:00Z", {"opportunity_id": "O1", "amount": 10000}, "salesforce"),
    ev("l7-q", "L7", "lead.sales_qualified", "2026-11-12T10:00:00Z", {}, "salesforce"),
    ev("l7-o", "L7", "opportunity.created", "2026-11-12T11:00:00Z", {"opportunity_id": "O7", "amount": 20000}, "salesforce"),
    created("l8-c", "L8", "2026-11-12T12:00:00Z", "referral", "smb", "launch"),
    ev("l4-q", "L4", "lead.disqualified", "2026-11-12T12:00:00Z", {"reason": "no_response"}, "salesforce"),
    ev("l8-m", "L8", "lead.marketing_qualified", "2026-11-12T12:05:00Z", {"fit": "poor"}),
    ev("l8-r", "L8", "lead.rejected", "2026-11-12T13:00:00Z", {"reason": "no_budget"}, "salesforce"),
    # Friday 11-13
    ev("l1-w", "L1", "deal.won", "2026-11-13T10:00:00Z", {"revenue": 8000, "currency": "EUR"}, "salesforce"),
    ev("l2-y", "L2", "lead.recycled", "2026-11-13T10:00:00Z", {"reason": "no_response"}, "salesforce"),
    ev("l7-l", "L7", "deal.lost", "2026-11-13T11:00:00Z", {"reason": "competitor"}, "salesforce"),
    # Saturday 11-14
    download("l6-d", "L6", "2026-11-14T10:00:00Z", "guide.pdf", False),
    # Late: L5's acceptance happened on Friday 15:00 (before its due time, Friday 16:00) but
    # arrives after the clock time passed the due time: the breach is corrected.
    ev("l5-s", "L5", "lead.accepted", "2026-11-13T15:00:00Z", {"owner": "ben"}, "salesforce"),
]
