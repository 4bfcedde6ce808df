"""The lifecycle service on the real Kafka and Postgres: events in, store and topic out, exactly
once, and a duplicate event_id changes nothing anywhere."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest

from services.common.envelope import Event
from services.lifecycle.batch import next_entry
from services.lifecycle.domain import apply_event
from services.lifecycle.service import LifecycleOptions, LifecycleService
from services.lifecycle.synthetic import START, expected_transitions, lead_stream, produce_events
from tests.faults.lifecycle_harness import check_exactly_once, count_stored, fetch_store, read_topic, wait_for

pytestmark = pytest.mark.stack


@asynccontextmanager
async def running_service(settings, **options):
    service = LifecycleService(settings, LifecycleOptions(serve_metrics=False, **options))
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        service.request_stop()
        await asyncio.wait_for(task, 60)
        await service.close()


def metric(service, name: str, **labels) -> float:
    value = service.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def projection_from(expected_events) -> dict:
    """Each lead's projection row, folding its events with the domain (as `leadflow rebuild` does)."""
    entries: dict = {}
    for event in expected_events:
        prev = entries.get(event.lead_id)
        state, _ = apply_event(prev.state if prev else None, event)
        entries[event.lead_id] = next_entry(prev, state, event.occurred_at)
    return entries


async def test_events_in_store_and_topic_out(settings):
    events = lead_stream(300, seed=11, duplicate_share=0.02)
    expected = expected_transitions(events)
    duplicates = len(events) - len(expected)
    assert duplicates > 0
    await produce_events(settings, events)

    async with running_service(settings, max_records=500) as service:
        await wait_for(lambda: _stored_at_least(settings, len(expected)), 60, what="all events stored")
        await wait_for(lambda: _published_all(service), 30, what="publishing done")
        applied = sum(
            metric(service, "leadflow_lifecycle_events_applied_total", type=t) for t in {e.type for e in events})
        dups = metric(service, "leadflow_lifecycle_duplicates_total")
        stage_changes = sum(1 for t in expected if t.ignored is None and t.from_stage != t.to_stage)
        changes_metric = sum(
            s.value for m in service.registry.collect() if m.name == "leadflow_lifecycle_transitions"
            for s in m.samples if s.name == "leadflow_lifecycle_transitions_total")

    rows, leads, dup_rows, offsets = await fetch_store(settings)
    topic = await read_topic(settings, settings.topics.lifecycle)
    check_exactly_once(expected, rows, topic)
    assert len(topic) == len(expected)
    assert applied == len(expected)
    assert dups == duplicates == len(dup_rows)
    assert changes_metric == stage_changes

    # The projection is the fold of each lead's stored events.
    unique = {}
    for e in events:
        unique.setdefault(e.event_id, e)
    want = projection_from(list(unique.values()))
    got = {r["lead_id"]: r for r in leads}
    assert got.keys() == want.keys()
    for lead_id, entry in want.items():
        row, s = got[lead_id], entry.state
        assert (row["stage"], row["version"], row["channel"], row["segment"], row["fit"], row["owner"], row["team"]) == (
            s.stage, s.version, s.channel, s.segment, s.fit, s.owner, s.team), lead_id
        assert (row["created_at"], row["updated_at"], row["stage_entered_at"]) == (
            entry.created_at, entry.updated_at, entry.stage_entered_at), lead_id

    # Stored up to == published up to == the end of each input partition.
    assert sum(1 for _ in offsets) == settings.topic_partitions
    # A published record carries the whole event.
    first = next(rec for _, _, _, rec in topic if rec["version"] == 1)
    source = unique[first["event_id"]]
    assert first["event"]["type"] == source.type
    assert first["event"]["occurred_at"] == source.occurred_at


async def _stored_at_least(settings, n: int) -> bool:
    return await count_stored(settings) >= n


async def _published_all(service) -> bool:
    parts = list(service._parts.values())
    return bool(parts) and all(p.ready and (p.published or 0) == p.next_offset for p in parts)


def _event(event_id: str, lead_id: str, etype: str, minutes: int, payload=None) -> Event:
    return Event(event_id, lead_id, etype, START + timedelta(minutes=minutes), "hubspot", payload or {})


async def test_duplicate_event_id_changes_nothing(settings):
    first = [
        _event("d-1", "LD-1", "lead.created", 0, {"channel": "website", "segment": "smb"}),
        _event("d-2", "LD-1", "lead.marketing_qualified", 5, {"fit": "good"}),
        _event("d-3", "LD-1", "lead.assigned", 6, {"owner": "rep-1", "team": "sales-smb"}),
    ]
    await produce_events(settings, first)
    async with running_service(settings) as service:
        await wait_for(lambda: _stored_at_least(settings, 3), 60, what="three events stored")
        await wait_for(lambda: _published_all(service), 30, what="publishing done")
        before = await fetch_store(settings)
        topic_before = await read_topic(settings, settings.topics.lifecycle)

        # The same event id again: once identical, once with another type and payload, and once
        # naming another lead. None may change anything; each is recorded as refused.
        again = [
            first[1],
            _event("d-2", "LD-1", "lead.rejected", 9, {"reason": "no_fit"}),
            _event("d-3", "LD-2", "lead.created", 9, {"channel": "event"}),
        ]
        await produce_events(settings, again)
        await wait_for(lambda: _duplicates_at_least(settings, 3), 60, what="three duplicates recorded")
        await wait_for(lambda: _published_all(service), 30, what="publishing done")
        dups = metric(service, "leadflow_lifecycle_duplicates_total")

    after = await fetch_store(settings)
    topic_after = await read_topic(settings, settings.topics.lifecycle)
    assert [dict(r) for r in after[0]] == [dict(r) for r in before[0]]          # lead_events
    assert [dict(r) for r in after[1]] == [dict(r) for r in before[1]]          # leads (LD-2 not created)
    assert [r[3] for r in topic_after] == [r[3] for r in topic_before]          # nothing published
    assert [(r["event_id"], r["lead_id"], r["type"]) for r in after[2]] == [
        ("d-2", "LD-1", "lead.marketing_qualified"), ("d-2", "LD-1", "lead.rejected"), ("d-3", "LD-2", "lead.created")]
    assert dups == 3
    # The topic moved on: the duplicates' offsets are consumed and committed, not re-read.
    stored_upto = {r["partition"]: r["next_offset"] for r in after[3]}
    assert sum(stored_upto.values()) == 6


async def _duplicates_at_least(settings, n: int) -> bool:
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        return await conn.fetchval(f'SELECT count(*) FROM "{settings.postgres_schema}".duplicate_events') >= n
    finally:
        await conn.close()
