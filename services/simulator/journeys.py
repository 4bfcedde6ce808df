"""One lead's way through the company: what marketing does, then what its BDR does, as
(occurred_at, type, source, payload) steps. Times come from the rep's habits (company.py)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.simulator import company as co
from services.simulator.businesstime import add_business_minutes, next_opening


@dataclass
class Step:
    at: datetime
    type: str
    source: str
    payload: dict[str, Any]


@dataclass
class Journey:
    lead_id: str
    steps: list[Step] = field(default_factory=list)

    def add(self, at: datetime, type_: str, source: str, payload: dict[str, Any] | None = None) -> datetime:
        self.steps.append(Step(at, type_, source, payload or {}))
        return at


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _fit(rng: random.Random, good_share: float) -> str:
    if rng.random() < good_share:
        return "good"
    return "poor" if rng.random() < 0.7 else "unknown"


def _created_payload(rng: random.Random, lead_id: str, channel: str, segment: str, campaign: str | None) -> dict[str, Any]:
    company = f"{rng.choice(co.COMPANY_WORDS)} {rng.choice(co.COMPANY_KINDS)} GmbH"
    domain = company.split()[0].lower() + "-" + company.split()[1].lower()
    payload = {"channel": channel, "segment": segment, "email": f"{lead_id}@{domain}.example",
               "company": company, "country": pick(rng, co.COUNTRIES)}
    if campaign:
        payload["campaign"] = campaign
    return payload


def _download(j: Journey, rng: random.Random, at: datetime, source: str) -> None:
    payload: dict[str, Any] = {"kind": "download", "asset": rng.choice(co.ASSETS)}
    if rng.random() < 0.6:  # the "was this helpful?" box on the thank-you page, when ticked
        payload["helpful"] = rng.random() < 0.7
    j.add(at, "lead.activity", source, payload)


def website_lead(rng: random.Random, lead_id: str, at: datetime, rep: co.Rep) -> tuple[Journey, str, str]:
    """A form fill on the website: scored at once, the good ones an MQL for the inbound team."""
    j = Journey(lead_id)
    segment = pick(rng, co.SEGMENTS)
    fit = _fit(rng, co.WEBSITE_GOOD_FIT)
    campaign = rng.choice(co.CAMPAIGNS) if rng.random() < 0.3 else None
    j.add(at, "lead.created", "website", _created_payload(rng, lead_id, "website", segment, campaign))
    _download(j, rng, at + timedelta(seconds=20), "website")
    score = {"good": rng.randint(60, 95), "unknown": rng.randint(35, 65), "poor": rng.randint(5, 40)}[fit]
    j.add(at + timedelta(minutes=2), "lead.scored", "hubspot", {"score": score, "fit": fit})
    if fit == "poor" and rng.random() < 0.4:  # nurtured by marketing, never handed over
        j.add(at + timedelta(minutes=3), "lead.information_qualified", "hubspot")
        return j, segment, fit
    mql = j.add(at + timedelta(minutes=3), "lead.marketing_qualified", "hubspot", {"fit": fit})
    assigned = j.add(mql + timedelta(minutes=1), "lead.assigned", "hubspot", {"owner": rep.owner, "team": rep.team})
    sales_work(j, rng, rep, assigned, segment, fit, campaign=None)
    return j, segment, fit


def handoff_lead(rng: random.Random, lead_id: str, created: datetime, handoff: datetime, rep: co.Rep,
                 fit: str, campaign: str, conference: datetime) -> Journey:
    """A lead marketing generated during the week and hands over on Monday morning."""
    j = Journey(lead_id)
    segment = pick(rng, co.SEGMENTS)
    channel = pick(rng, co.HANDOFF_CHANNELS)
    j.add(created, "lead.created", "hubspot", _created_payload(rng, lead_id, channel, segment, campaign))
    span = (handoff - created).total_seconds()
    for _ in range(rng.randint(1, 3)):
        _download(j, rng, created + timedelta(seconds=rng.uniform(60, max(120, span * 0.6))), "hubspot")
    score = {"good": rng.randint(60, 95), "unknown": rng.randint(35, 65), "poor": rng.randint(10, 45)}[fit]
    j.add(created + timedelta(seconds=span * 0.65), "lead.scored", "hubspot", {"score": score, "fit": fit})
    j.add(created + timedelta(seconds=span * 0.7), "lead.information_qualified", "hubspot")
    j.add(created + timedelta(seconds=span * 0.9), "lead.marketing_qualified", "hubspot", {"fit": fit})
    j.add(handoff, "lead.assigned", "hubspot", {"owner": rep.owner, "team": rep.team})
    sales_work(j, rng, rep, handoff, segment, fit, campaign=campaign, conference=conference)
    return j


def sales_work(j: Journey, rng: random.Random, rep: co.Rep, assigned: datetime, segment: str, fit: str,
               campaign: str | None, conference: datetime | None = None) -> None:
    """The BDR's part: calls from the dialer, accept or reject in the CRM, recycle the unreachable,
    book meetings, and what sales makes of them."""
    required = 8 if segment == "enterprise" else 6
    limit = min(rep.attempts_before_giving_up, required)  # a rep who gives up early breaches contact_attempts
    decision_at = add_business_minutes(assigned, rng.uniform(*rep.decision))
    if rng.random() < rep.late_decisions:
        decision_at = add_business_minutes(decision_at, rng.uniform(900, 1800))  # slips by two to four days
    rejects = rng.random() < {"good": 0.08, "unknown": 0.3, "poor": 0.55}[fit]
    call = add_business_minutes(assigned, rng.uniform(*rep.first_call))
    connected = last_call = None
    for _ in range(limit):
        if rejects and call > decision_at:
            break
        last_call = j.add(call, "contact.attempted", "dialer", {"channel": "phone", "owner": rep.owner})
        if rng.random() < 0.3:
            connected = j.add(call + timedelta(minutes=2), "contact.connected", "dialer",
                              {"channel": "phone", "owner": rep.owner})
            break
        call = add_business_minutes(call, rng.uniform(150, 540))
    recycle_at = None
    if connected is None and not rejects and last_call is not None:
        # Unreached after the attempts the rep makes: back to marketing the next business morning.
        recycle_at = next_opening(add_business_minutes(last_call, rng.uniform(420, 480)))
    if recycle_at is None or decision_at < recycle_at:
        if rejects:
            j.add(decision_at, "lead.rejected", "salesforce", {"reason": pick(rng, co.REJECT_REASONS)})
        else:
            j.add(decision_at, "lead.accepted", "salesforce", {"owner": rep.owner})
    if recycle_at is not None:
        j.add(recycle_at + timedelta(minutes=rng.randint(1, 50)), "lead.recycled", "hubspot", {"reason": co.NO_RESPONSE})
        return
    if connected is None or rejects:
        return
    after = max(connected, decision_at)
    wants_meeting = 0.75 if campaign == co.CONFERENCE_CAMPAIGN else {"good": 0.5, "unknown": 0.3, "poor": 0.15}[fit]
    if rng.random() >= wants_meeting:
        if rng.random() < 0.3:
            j.add(add_business_minutes(after, rng.uniform(480, 2400)), "lead.disqualified", "salesforce",
                  {"reason": pick(rng, co.DISQUALIFY_REASONS)})
        return
    booked = add_business_minutes(after, rng.uniform(20, 240))
    meeting = next_opening(booked + timedelta(days=rng.uniform(2, 8)))
    if campaign == co.CONFERENCE_CAMPAIGN and conference is not None and meeting >= conference:
        meeting = booked + timedelta(hours=rng.uniform(20, 30))  # squeezed in before the conference
    j.add(booked, "meeting.booked", "hubspot",
          {"owner": rep.owner, "scheduled_for": meeting.strftime("%Y-%m-%dT%H:%M:%SZ")})
    if rng.random() >= 0.75:
        return
    sql = j.add(meeting + timedelta(hours=1), "lead.sales_qualified", "salesforce")
    if rng.random() >= 0.8:
        return
    opp = add_business_minutes(sql, rng.uniform(240, 1440))
    amount = round(rng.choice((9_600, 14_400, 24_000, 36_000, 60_000)) * {"smb": 1, "midmarket": 2, "enterprise": 5}[segment])
    j.add(opp, "opportunity.created", "salesforce", {"opportunity_id": f"opp-{j.lead_id}", "amount": amount})
    closes = opp + timedelta(days=rng.uniform(4, 20))
    outcome = rng.random()
    if outcome < 0.4:
        j.add(closes, "deal.won", "salesforce", {"revenue": round(amount * rng.uniform(0.8, 1.05), 2), "currency": "EUR"})
    elif outcome < 0.8:
        j.add(closes, "deal.lost", "salesforce", {"reason": pick(rng, co.LOST_REASONS)})
