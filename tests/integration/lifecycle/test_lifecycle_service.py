"""The lifecycle service on the real Kafka and Postgres: events in, store and topic out, exactly
once, and a duplicate event_id changes nothing anywhere."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.envelope import Event
from services.lifecycle.batch import next_entry
from services.lifecycle.domain import apply_event
from services.lifecycle.service import LifecycleOptions, LifecycleService
from services.lifecycle.synthetic import START, expected_transitions, lead_stream, produce_events
from services.stack.process import free_port
from tests.faults.lifecycle_harness import check_exactly_once, count_stored, fetch_store, read_topic, wait_for

pytestmark = pytest.mark.stack


@asynccontextmanager
async def running_service(settings, **options):
    service = LifecycleService(settings, LifecycleOptions(**{"serve_metrics": False, **options}))
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


# docs/metrics.md, lifecycle section and the metrics of every Kafka consumer: exactly these.
DOCUMENTED = {
    "leadflow_lifecycle_events_applied": ("counter", {"type"}),
    "leadflow_lifecycle_events_ignored": ("counter", {"reason"}),
    "leadflow_lifecycle_duplicates": ("counter", set()),
    "leadflow_lifecycle_transitions": ("counter", {"from_stage", "to_stage", "channel", "segment"}),
    "leadflow_lifecycle_rejections": ("counter", {"reason"}),
    "leadflow_lifecycle_batch_size": ("histogram", set()),
    "leadflow_lifecycle_batch_duration_seconds": ("histogram", set()),
    "leadflow_lifecycle_transactions": ("counter", set()),
    "leadflow_lifecycle_leads": ("gauge", {"stage"}),
    "leadflow_consumer_lag": ("gauge", {"service", "topic", "partition"}),
    "leadflow_consumer_records": ("counter", {"service", "topic"}),
    "leadflow_errors": ("counter", {"service", "kind"}),
}


async def test_metrics_served_as_documented(settings):
    events = lead_stream(100, seed=5, duplicate_share=0.05)
    expected = expected_transitions(events)
    await produce_events(settings, events)
    port = free_port()
    s = settings.with_changes(lifecycle_metrics_port=port)
    async with running_service(s, serve_metrics=True, metrics_host="127.0.0.1", leads_gauge_interval_s=0.2) as service:
        await wait_for(lambda: _stored_at_least(settings, len(expected)), 60, what="events stored")
        await wait_for(lambda: _published_all(service), 30, what="publishing done")
        await asyncio.sleep(0.5)   # a gauge refresh
        service._update_lag()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
    families = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("leadflow_")}
    assert set(families) == set(DOCUMENTED)
    for name, (kind, labels) in DOCUMENTED.items():
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)

    def value(name, **labels):
        return sum(s.value for s in families[name].samples
                   if s.name == name + ("_total" if families[name].type == "counter" else "")
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("leadflow_lifecycle_events_applied") == len(expected)
    assert value("leadflow_lifecycle_duplicates") == len(events) - len(expected)
    assert value("leadflow_consumer_records", service="lifecycle", topic=settings.topics.events) == len(events)
    # The recovery's one per partition on assignment, then at least one for each partition's events.
    assert 2 * settings.topic_partitions <= value("leadflow_lifecycle_transactions") == service.transactions
    stages = {}
    for t in expected:
        stages[t.lead_id] = t.to_stage
    assert {st: value("leadflow_lifecycle_leads", stage=st) for st in set(stages.values())} == {
        st: sum(1 for v in stages.values() if v == st) for st in set(stages.values())}
    assert value("leadflow_lifecycle_leads", stage="disqualified") == 0     # every stage has a series
    lag = [s for s in families["leadflow_consumer_lag"].samples]
    assert len(lag) == settings.topic_partitions and all(s.value == 0 for s in lag)
    assert all(s.labels["service"] == "lifecycle" for s in lag)


async def test_unreadable_records_are_kept_and_the_pipeline_goes_on(settings):
    from services.common.kafka import make_producer

    good = [
        _event("u-1", "LU-1", "lead.created", 0, {"channel": "website"}),
        _event("u-2", "LU-1", "lead.marketing_qualified", 1, {"fit": "good"}),
    ]
    nul = _event("u-3", "LU\x00-1", "lead.created", 2, {})
    await produce_events(settings, good[:1])
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.events, b"not avro at all", key=b"LU-1", partition=0)
        await producer.send_and_wait(settings.topics.events, None, key=b"LU-1", partition=0)   # a tombstone
    finally:
        await producer.stop()
    await produce_events(settings, [nul])
    await produce_events(settings, good[1:])
    async with running_service(settings) as service:
        await wait_for(lambda: _stored_at_least(settings, 2), 60, what="the readable events stored")
        await wait_for(lambda: _published_all(service), 30, what="publishing done")
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        rows = await conn.fetch(f'SELECT kafka_partition, record_key, record_value, error FROM '
                                f'"{settings.postgres_schema}".unreadable_records ORDER BY kafka_partition, kafka_offset')
        stored = await conn.fetch(f'SELECT event_id FROM "{settings.postgres_schema}".lead_events ORDER BY event_id')
    finally:
        await conn.close()
    assert [r["event_id"] for r in stored] == ["u-1", "u-2"]
    assert len(rows) == 3
    assert {r["record_value"] for r in rows if r["error"].startswith("decode:")} >= {b"not avro at all"}
    assert any("NUL" in r["error"] for r in rows)
    assert all(r["error"] for r in rows)
    topic = await read_topic(settings, settings.topics.lifecycle)
    assert sorted(rec["event_id"] for _, _, _, rec in topic) == ["u-1", "u-2"]
