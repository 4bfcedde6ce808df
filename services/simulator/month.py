"""Assemble a month: marketing's Monday handoffs, website leads day and night, the BDRs' work,
and the order in which the systems deliver it all, one CRM batch arriving days late.

The simulated period runs from four days before the month (so the month's first ISO week and the
month itself start after the first event, and volume windows are judged, contract §4) to the end
of the month or `now`, whichever is first. Lead and event ids carry the month, so simulating
another month makes new leads, and simulating the same month again only repeats event ids
(duplicates, which the pipeline ignores)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any

from services.simulator import company as co
from services.simulator.businesstime import BERLIN, berlin_midnight
from services.simulator.journeys import Journey, handoff_lead, website_lead

LEAD_DAYS_BEFORE_MONTH = 4
DIALER_SOURCE = "dialer"


@dataclass(frozen=True)
class SimulatedMonth:
    month: str                     # "2026-11"
    month_start: datetime          # UTC instant of the 1st, 00:00 Europe/Berlin
    month_end: datetime            # the next month's start
    start: datetime                # first moment simulated
    end: datetime                  # last moment simulated (month_end or now)
    events: list[dict[str, Any]]   # contract envelopes in delivery (log) order
    late_event_ids: frozenset[str]  # delivered by the late CRM batch
    late_batch_delivered_at: datetime
    conference: dict[str, Any]     # the joint campaign: name, goal, deadline

    @property
    def leads(self) -> int:
        return len({e["lead_id"] for e in self.events})


def previous_month(now: datetime) -> tuple[int, int]:
    local = now.astimezone(BERLIN)
    return (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)


def route_of(event: dict[str, Any]) -> str:
    """How the event reaches leadflow: the dialer writes to Kafka, every other system uses HTTP."""
    return "kafka" if event["source"] == DIALER_SOURCE else "http"


def _fmt(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rep(rng: random.Random, reps: tuple[co.Rep, ...]) -> co.Rep:
    return rng.choices(reps, [r.share for r in reps])[0]


def _website_arrival(rng: random.Random, day: datetime) -> datetime:
    """A form fill on `day` (Berlin midnight, UTC): most in office hours, a quarter outside them."""
    local = day.astimezone(BERLIN)
    if local.weekday() < 5 and rng.random() < 0.75:
        seconds = rng.uniform(9 * 3600, 17 * 3600)
    else:
        while True:
            seconds = rng.uniform(6 * 3600, 23.5 * 3600)
            if local.weekday() >= 5 or not 9 * 3600 <= seconds < 17 * 3600:
                break
    naive = datetime.combine(local.date(), time()) + timedelta(seconds=seconds)
    return naive.replace(tzinfo=BERLIN).astimezone(timezone.utc)


def _days(start: datetime, end: datetime) -> list[datetime]:
    """The Berlin midnights (as UTC) of every day from start's day until end."""
    out, local = [], start.astimezone(BERLIN).date()
    while (day := berlin_midnight(local.year, local.month, local.day)) < end:
        out.append(day)
        local += timedelta(days=1)
    return out


def simulate_month(now: datetime, seed: int = 1) -> SimulatedMonth:
    """The calendar month before `now` (Europe/Berlin), deterministic for (month, seed)."""
    if now.tzinfo is None:
        raise ValueError("simulate_month: `now` must be an aware datetime")
    year, month = previous_month(now)
    tag = f"{year:04d}{month:02d}"
    rng = random.Random(f"leadflow-simulator:{tag}:{seed}")
    month_start = berlin_midnight(year, month)
    month_end = berlin_midnight(year + (month == 12), month % 12 + 1)
    start = (month_start.astimezone(BERLIN) - timedelta(days=LEAD_DAYS_BEFORE_MONTH)).astimezone(timezone.utc)
    end = min(month_end, now)
    conference_at = berlin_midnight(year, month, co.CONFERENCE_DAY) + timedelta(hours=9)

    journeys: list[Journey] = []
    counter = iter(range(1, 100_000))

    def new_id() -> str:
        return f"nw-{tag}-{next(counter):04d}"

    # Website leads, every day of the period. The first arrives in the small hours of the first
    # day, so the period's first event comes before the month and its weeks begin.
    days = _days(start, end)
    for index, day in enumerate(days):
        weekend = day.astimezone(BERLIN).weekday() >= 5
        for n in range(max(1, round(rng.gauss(co.WEBSITE_LEADS_PER_DAY[weekend], 2)))):
            at = day + timedelta(minutes=7) if index == 0 and n == 0 else _website_arrival(rng, day)
            journeys.append(website_lead(rng, new_id(), at, _rep(rng, co.INBOUND_REPS))[0])

    # Marketing's handoff every Monday of the period, 09:00-10:30.
    mondays = [day for day in days if day.astimezone(BERLIN).weekday() == 0]
    for week, monday in enumerate(mondays):
        count, good_share = co.WEEKLY_HANDOFF[week % len(co.WEEKLY_HANDOFF)]
        good = round(count * good_share)
        fits = ["good"] * good + [("poor" if i % 3 else "unknown") for i in range(count - good)]
        rng.shuffle(fits)
        for fit in fits:
            created = monday - timedelta(seconds=rng.uniform(3600 * 20, 86400 * 8))
            created = max(created, start + timedelta(hours=1))
            handoff = monday + timedelta(hours=9, seconds=rng.uniform(0, 5400))
            conference_lead = monday < conference_at - timedelta(days=7) and rng.random() < 0.15
            campaign = co.CONFERENCE_CAMPAIGN if conference_lead else rng.choice(co.CAMPAIGNS)
            journeys.append(handoff_lead(rng, new_id(), created, handoff, _rep(rng, co.FIELD_REPS), fit,
                                         campaign, conference_at))

    # The CRM sync of the field team stalls from the second Monday's Tuesday to Thursday noon;
    # what it held (and the held leads' later events) arrives together on Friday at 18:00.
    stall_from = mondays[1] + timedelta(days=1)
    stall_to = mondays[1] + timedelta(days=3, hours=12)
    delivered = mondays[1] + timedelta(days=4, hours=18)
    field_owners = {r.owner for r in co.FIELD_REPS}

    rows: list[tuple[datetime, datetime, int, int, dict[str, Any]]] = []
    late: set[str] = set()
    for lead_no, journey in enumerate(journeys):
        steps = sorted((s for s in journey.steps if start <= s.at < end), key=lambda s: s.at)
        owner = next((s.payload["owner"] for s in steps if s.type == "lead.assigned"), None)
        held_until = None
        for index, step in enumerate(steps):
            event = {"event_id": f"{journey.lead_id}.{index + 1:02d}", "lead_id": journey.lead_id, "type": step.type,
                     "occurred_at": _fmt(step.at), "source": step.source, "payload": step.payload}
            if (owner in field_owners and step.source == "salesforce" and stall_from <= step.at < stall_to
                    and delivered < end):
                held_until = delivered
            delivery = step.at
            if held_until is not None and step.at < held_until:
                delivery = held_until
                late.add(event["event_id"])
            rows.append((delivery, step.at, lead_no, index, event))
    rows.sort(key=lambda r: r[:4])
    return SimulatedMonth(
        month=f"{year:04d}-{month:02d}", month_start=month_start, month_end=month_end, start=start, end=end,
        events=[r[4] for r in rows], late_event_ids=frozenset(late), late_batch_delivered_at=delivered,
        conference={"campaign": co.CONFERENCE_CAMPAIGN, "goal_meetings": co.CONFERENCE_GOAL_MEETINGS,
                    "before": _fmt(conference_at)},
    )

