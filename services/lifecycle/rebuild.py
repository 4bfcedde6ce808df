"""`leadflow rebuild`: recompute the leads projection from lead_events with the domain code, and
report every difference (and, with fix, rewrite the projection to match the events).

Each lead's stored events are folded in version order with `apply_event` (the one state machine),
and the projection's times with `batch.next_entry` (the service's own rule). Each stored event's
from/to/ignore/version is also checked against what the domain says now.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.common.envelope import Event
from services.lifecycle import store
from services.lifecycle.batch import LeadEntry, next_entry
from services.lifecycle.domain import apply_event

FIELDS = ("stage", "version", "owner", "team", "channel", "segment", "fit",
          "created_at", "updated_at", "stage_entered_at")
MAX_LISTED = 1000


def entry_fields(entry: LeadEntry) -> dict[str, Any]:
    s = entry.state
    return {"stage": s.stage, "version": s.version, "owner": s.owner, "team": s.team, "channel": s.channel,
            "segment": s.segment, "fit": s.fit, "created_at": entry.created_at, "updated_at": entry.updated_at,
            "stage_entered_at": entry.stage_entered_at}


@dataclass
class RebuildReport:
    leads: int = 0
    events: int = 0
    leads_differing: int = 0
    missing_in_projection: int = 0
    orphans_in_projection: int = 0
    event_mismatches: int = 0
    differences: list[dict] = field(default_factory=list)       # at most MAX_LISTED
    mismatched_events: list[dict] = field(default_factory=list)  # at most MAX_LISTED
    fixed: int = 0

    @property
    def consistent(self) -> bool:
        return not (self.leads_differing or self.missing_in_projection or self.orphans_in_projection
                    or self.event_mismatches)

    def to_json(self) -> dict[str, Any]:
        def plain(v):
            return v.isoformat() if hasattr(v, "isoformat") else v
        return {
            "leads": self.leads, "events": self.events, "consistent": self.consistent,
            "leads_differing": self.leads_differing, "missing_in_projection": self.missing_in_projection,
            "orphans_in_projection": self.orphans_in_projection, "event_mismatches": self.event_mismatches,
            "fixed": self.fixed,
            "differences": [{k: plain(v) for k, v in d.items()} for d in self.differences],
            "mismatched_events": self.mismatched_events,
        }


def _event_of(row: asyncpg.Record) -> Event:
    payload = row["payload"]
    return Event(row["event_id"], row["lead_id"], row["type"], row["occurred_at"], row["source"],
                 json.loads(payload) if isinstance(payload, str) else payload)


async def rebuild(conn: asyncpg.Connection, fix: bool = False) -> RebuildReport:
    """Compare (and with fix, rewrite) the projection. Without fix it reads one consistent snapshot;
    with fix it first holds every partition's offset row, so running services wait at their next
    commit until the rewrite is done (their cached lead states stay as they were: restart them
    after a fix that changed anything)."""
    report = RebuildReport()
    if fix:
        async with conn.transaction():
            await store.lock_writers(conn)
            rewrite, orphans = await _compare(conn, report)
            if rewrite or orphans:
                await store.rewrite_projection(conn, rewrite, orphans)
            report.fixed = len(rewrite) + len(orphans)
    else:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await _compare(conn, report)
    return report


async def _compare(conn: asyncpg.Connection, report: RebuildReport) -> tuple[dict[str, LeadEntry], list[str]]:
    projection = await store.all_projection(conn)
    rewrite: dict[str, LeadEntry] = {}
    current: str | None = None
    entry: LeadEntry | None = None

    def finish(lead_id: str, folded: LeadEntry) -> None:
        report.leads += 1
        stored = projection.pop(lead_id, None)
        want = entry_fields(folded)
        if stored is None:
            report.missing_in_projection += 1
            rewrite[lead_id] = folded
            if len(report.differences) < MAX_LISTED:
                report.differences.append({"lead_id": lead_id, "field": "(row)", "projection": None,
                                           "events": "present"})
            return
        have = entry_fields(stored)
        diff = [f for f in FIELDS if have[f] != want[f]]
        if diff:
            report.leads_differing += 1
            rewrite[lead_id] = folded
            for f in diff:
                if len(report.differences) < MAX_LISTED:
                    report.differences.append({"lead_id": lead_id, "field": f, "projection": have[f], "events": want[f]})

    async for row in store.iter_events_by_lead(conn):
        lead_id = row["lead_id"]
        if lead_id != current:
            if current is not None:
                finish(current, entry)
            current, entry = lead_id, None
        report.events += 1
        event = _event_of(row)
        state, t = apply_event(entry.state if entry is not None else None, event)
        entry = next_entry(entry, state, event.occurred_at)
        got = (row["version"], row["from_stage"], row["to_stage"], row["ignored"])
        want = (t.version, t.from_stage, t.to_stage, t.ignored)
        if got != want:
            report.event_mismatches += 1
            if len(report.mismatched_events) < MAX_LISTED:
                report.mismatched_events.append({
                    "lead_id": lead_id, "event_id": row["event_id"],
                    "stored": dict(zip(("version", "from", "to", "ignored"), got)),
                    "domain": dict(zip(("version", "from", "to", "ignored"), want)),
                })
    if current is not None:
        finish(current, entry)
    orphans = sorted(projection)   # projection rows with no event at all
    report.orphans_in_projection = len(orphans)
    for lead_id in orphans[:max(0, MAX_LISTED - len(report.differences))]:
        report.differences.append({"lead_id": lead_id, "field": "(row)", "projection": "present", "events": None})
    return rewrite, orphans
