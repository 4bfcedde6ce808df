"""Hypothesis strategies: valid events of all 17 types, logs with repeated ids, and lead states."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from hypothesis import strategies as st

from services.common.envelope import EVENT_TYPES, Event, parse_event
from services.lifecycle.domain import STAGES, UNKNOWN_FIT, LeadState

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_fits = st.sampled_from(["good", "poor", "unknown"])
_amounts = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
_times = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(timezone.utc)
).map(lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%SZ"))

# Per type: (required fields, optional fields), following contract §2 / PAYLOAD_RULES.
_PAYLOAD_FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "lead.created": ({}, {
        "channel": st.sampled_from(["website", "event", "referral", "outbound"]),
        "segment": st.sampled_from(["smb", "midmarket", "enterprise"]),
        "email": st.just("a@example.com"), "company": _names, "campaign": _names,
        "country": st.sampled_from(["DE", "BR", "CN"]),
    }),
    "lead.activity": ({"kind": st.sampled_from(["download", "page_view", "webinar"])},
                      {"asset": _names, "helpful": st.booleans()}),
    "lead.scored": ({"score": st.integers(-100, 100)}, {"fit": _fits}),
    "lead.information_qualified": ({}, {}),
    "lead.marketing_qualified": ({}, {"fit": _fits}),
    "lead.assigned": ({"owner": st.sampled_from(["ana", "ben", "chen"]),
                       "team": st.sampled_from(["emea", "latam"])}, {}),
    "lead.accepted": ({}, {"owner": st.sampled_from(["ana", "ben", "dora"])}),
    "lead.rejected": ({"reason": _names}, {}),
    "contact.attempted": ({"channel": st.sampled_from(["phone", "email"])}, {"owner": _names}),
    "contact.connected": ({"channel": st.sampled_from(["phone", "linkedin"])}, {"owner": _names}),
    "meeting.booked": ({}, {"owner": _names, "scheduled_for": _times}),
    "lead.sales_qualified": ({}, {}),
    "opportunity.created": ({"opportunity_id": _names}, {"amount": _amounts}),
    "deal.won": ({"revenue": _amounts}, {"currency": st.sampled_from(["EUR", "USD"])}),
    "deal.lost": ({"reason": _names}, {}),
    "lead.recycled": ({"reason": st.sampled_from(["no_response", "timing"])}, {}),
    "lead.disqualified": ({"reason": st.sampled_from(["no_response", "student"])}, {}),
}
assert set(_PAYLOAD_FIELDS) == set(EVENT_TYPES), "every contract event type needs a payload strategy"


def payloads(etype: str) -> st.SearchStrategy[dict[str, Any]]:
    required, optional = _PAYLOAD_FIELDS[etype]
    # Unknown extra fields are part of the contract too (kept, not rejected).
    return st.fixed_dictionaries(required, optional={**optional, "x_extra": _names})


def events(
    types: Sequence[str] = EVENT_TYPES,
    lead_ids: st.SearchStrategy[str] = st.sampled_from(["L1", "L2", "L3"]),
    event_ids: st.SearchStrategy[str] = st.integers(1, 40).map(lambda n: f"e{n}"),
) -> st.SearchStrategy[Event]:
    """A valid Event of any of `types` (all 17 by default); small id pools make repeated ids likely."""

    def envelope(etype: str) -> st.SearchStrategy[Event]:
        return st.fixed_dictionaries({
            "event_id": event_ids,
            "lead_id": lead_ids,
            "type": st.just(etype),
            "occurred_at": _times,
            "source": st.sampled_from(["website", "hubspot", "salesforce", "dialer"]),
            "payload": payloads(etype),
        }).map(parse_event)

    return st.sampled_from(types).flatmap(envelope)


# Uniform types rarely walk a lead into `rejected` (only reachable from mql/sal) before a
# disqualification or a win ends its story; these weights make every stage and rule show up often.
_FUNNEL_WEIGHTS: dict[str, int] = {
    "lead.created": 2, "lead.activity": 1, "lead.scored": 1, "lead.information_qualified": 2,
    "lead.marketing_qualified": 4, "lead.assigned": 1, "lead.accepted": 3, "lead.rejected": 4,
    "contact.attempted": 1, "contact.connected": 1, "meeting.booked": 1, "lead.sales_qualified": 2,
    "opportunity.created": 2, "deal.won": 1, "deal.lost": 2, "lead.recycled": 3, "lead.disqualified": 1,
}
assert set(_FUNNEL_WEIGHTS) == set(EVENT_TYPES)
_FUNNEL_TYPES = [etype for etype, weight in _FUNNEL_WEIGHTS.items() for _ in range(weight)]


def event_logs(max_size: int = 60) -> st.SearchStrategy[list[Event]]:
    """A log in log order: several leads interleaved, some event ids repeated, all 17 types."""
    return st.lists(events(types=_FUNNEL_TYPES), max_size=max_size)


def lead_states(lead_id: str = "L1") -> st.SearchStrategy[LeadState]:
    """Any state a lead can be in, including off-path stages and unknown attributes."""
    maybe = lambda values: st.one_of(st.none(), st.sampled_from(values))  # noqa: E731
    return st.builds(
        LeadState,
        lead_id=st.just(lead_id),
        stage=st.sampled_from(STAGES),
        version=st.integers(0, 1000),
        channel=maybe(["website", "event"]),
        segment=maybe(["smb", "enterprise"]),
        fit=st.one_of(st.just(UNKNOWN_FIT), _fits),
        owner=maybe(["ana", "ben"]),
        team=maybe(["emea"]),
    )
