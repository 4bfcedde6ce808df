"""Builders for SLA tests: events through `parse_event`, transitions built directly (no state
machine here: each test states the stage move it means), times in Berlin or UTC."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from services.common.envelope import parse_event
from services.common.timefmt import format_utc
from services.lifecycle.domain import Transition
from services.sla_monitor.domain import Emission, SlaEngine, load_policy

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

REQUIRED_PAYLOAD: dict[str, dict[str, Any]] = {
    "lead.activity": {"kind": "download"},
    "lead.scored": {"score": 40},
    "lead.assigned": {"owner": "ana", "team": "emea"},
    "lead.rejected": {"reason": "no_fit"},
    "contact.attempted": {"channel": "phone"},
    "contact.connected": {"channel": "phone"},
    "opportunity.created": {"opportunity_id": "opp-1"},
    "deal.won": {"revenue": 1000},
    "deal.lost": {"reason": "price"},
    "lead.recycled": {"reason": "no_response"},
    "lead.disqualified": {"reason": "no_response"},
}

_ids = itertools.count(1)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def new_york(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def z(moment: datetime) -> str:
    """The contract's output format, to compare with outcome lines."""
    return format_utc(moment)


def transition(
    etype: str,
    at: datetime,
    lead_id: str = "L1",
    *,
    stage: str = "mql",
    to: str | None = None,
    ignored: str | None = None,
    version: int | None = 1,
    event_id: str | None = None,
    channel: str | None = "website",
    segment: str | None = "smb",
    fit: str = "unknown",
    owner: str | None = None,
    team: str | None = None,
    source: str = "test",
    **payload: Any,
) -> Transition:
    """A transition of `etype` at `at`: from `stage` to `to` (default: no move)."""
    event = parse_event({
        "event_id": event_id or f"ev-{next(_ids)}",
        "lead_id": lead_id,
        "type": etype,
        "occurred_at": at.isoformat(),
        "source": source,
        "payload": {**REQUIRED_PAYLOAD.get(etype, {}), **payload},
    })
    if etype == "lead.assigned":
        owner = owner or event.payload["owner"]
        team = team or event.payload["team"]
    return Transition(
        lead_id=lead_id, event_id=event.event_id, version=version, from_stage=stage,
        to_stage=stage if to is None else to, ignored=ignored, event=event,
        channel=channel, segment=segment, fit=fit, owner=owner, team=team,
    )


def drive(engine: SlaEngine, transitions: list[Transition]) -> list[Emission]:
    """Replay-style driving: advance to the largest event time seen, then observe."""
    emissions: list[Emission] = []
    latest: datetime | None = None
    for item in transitions:
        at = item.event.occurred_at
        latest = at if latest is None or at > latest else latest
        emissions += engine.advance(latest)
        emissions += engine.observe(item)
    return emissions


def lines_of(sla: str, transitions: list[Transition], until: datetime, policy=None) -> list[dict[str, Any]]:
    """Outcome lines of one SLA after replaying `transitions` up to `until`."""
    engine = SlaEngine(policy or load_policy())
    drive(engine, transitions)
    engine.advance(until)
    return [line for line in engine.outcome_lines(until) if line["sla"] == sla]
