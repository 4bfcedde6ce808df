"""leadflow.inbound on the real Kafka: good records land in leadflow.events, bad ones in
leadflow.dlq byte for byte with the reason and origin headers; the group offset moves with the
writes (one transaction), so a restart neither loses nor repeats anything."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.envelope import parse_event
from services.ingest.inbound import default_group_id

from ingest_it_helpers import fast_options, ingest_client, produce, read_topic, service_of

pytestmark = pytest.mark.stack

CODEC = AvroCodec("event_envelope")


def good(i: int, lead: str | None = None) -> dict:
    return {"event_id": f"in-{i}", "lead_id": lead or f"L-{i % 7}", "type": "contact.attempted",
            "occurred_at": "2026-11-02T10:00:00+02:00", "source": "dialer",
            "payload": {"channel": "phone", "owner": "rep-1", "call_sid": f"CA{i}"}}


BAD = [
    (b"bad-key-1", b"{this is not json"),
    (b"bad-key-2", json.dumps({**good(900), "type": "lead.teleported"}).encode()),
    (None, json.dumps({**good(901), "payload": {}}).encode()),
    (b"bad-key-4", b"\xff\xfe\x00binary"),
    (b"bad-key-5", json.dumps([good(902)]).encode()),
]
BAD_FIELDS = {b"{this is not json": "json", BAD[1][1]: "type", BAD[2][1]: "payload.channel",
              BAD[3][1]: "json", BAD[4][1]: "json"}


async def committed_offsets(settings, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == settings.topics.inbound}


async def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.3)
    return False


async def test_good_and_bad_inbound_records_land_in_events_and_dlq(settings):
    goods = [good(i) for i in range(40)]
    items = [(f"L-{i % 7}".encode(), json.dumps(e).encode()) for i, e in enumerate(goods)]
    items[10:10] = BAD[:3]
    items[30:30] = BAD[3:]
    await produce(settings, settings.topics.inbound, items, headers=[("upstream", b"dialer-gw")])

    async with ingest_client(settings, fast_options(consume_inbound=True)) as client:
        events = await read_topic(settings, settings.topics.events, len(goods))
        dlq = await read_topic(settings, settings.topics.dlq, len(BAD), settle=1.0)
        group = default_group_id(settings)
        assert await wait_for(lambda: _all_committed(settings, group, len(items))), "offsets not committed"
        registry = service_of(client).registry
        assert registry.get_sample_value("leadflow_ingest_events_accepted_total", {"source": "dialer", "via": "kafka"}) == 40
        assert registry.get_sample_value("leadflow_ingest_dlq_records_total", {"field": "json"}) == 3
        assert registry.get_sample_value("leadflow_ingest_events_refused_total",
                                         {"source": "dialer", "via": "kafka", "field": "type"}) == 1
        assert registry.get_sample_value("leadflow_consumer_records_total",
                                         {"service": "ingest", "topic": settings.topics.inbound}) == len(items)

    # leadflow.events: every good record once, as the HTTP path encodes it
    assert len(events) == len(goods)
    expected = {e["event_id"]: parse_event(e) for e in goods}
    seen = []
    for record in events:
        event = event_from_avro(CODEC.decode(record.value))
        assert event == expected[event.event_id]
        assert record.key == event.lead_id.encode()
        assert dict(record.headers) == {"source": b"dialer", "ingest-via": b"kafka"}
        seen.append(event.event_id)
    assert sorted(seen) == sorted(expected)

    # leadflow.dlq: every bad record byte for byte, same key, with reason and origin
    assert len(dlq) == len(BAD)
    produced = {}
    inbound = await read_topic(settings, settings.topics.inbound, len(items))
    for r in inbound:
        produced[r.value] = r
    for record in dlq:
        headers = dict(record.headers)
        origin = produced[record.value]
        assert record.key == origin.key
        assert headers["upstream"] == b"dialer-gw"
        assert headers["leadflow-error-field"].decode() == BAD_FIELDS[record.value]
        assert headers["leadflow-error-reason"]
        assert headers["leadflow-origin-topic"].decode() == settings.topics.inbound
        assert int(headers["leadflow-origin-partition"]) == origin.partition
        assert int(headers["leadflow-origin-offset"]) == origin.offset
    assert sorted(r.value for r in dlq) == sorted(v for _, v in BAD)


async def _all_committed(settings, group: str, total: int) -> bool:
    return sum((await committed_offsets(settings, group)).values()) == total


async def test_a_restart_continues_after_the_committed_offset_exactly_once(settings):
    first = [good(i, lead="L-restart") for i in range(10)]
    await produce(settings, settings.topics.inbound, [(b"L-restart", json.dumps(e).encode()) for e in first])
    group = default_group_id(settings)
    async with ingest_client(settings, fast_options(consume_inbound=True)):
        await read_topic(settings, settings.topics.events, 10)
        assert await wait_for(lambda: _all_committed(settings, group, 10))

    second = [good(i, lead="L-restart") for i in range(10, 15)] + [None]
    await produce(settings, settings.topics.inbound,
                  [(b"L-restart", json.dumps(e).encode() if e else b"[]") for e in second])
    async with ingest_client(settings, fast_options(consume_inbound=True)):
        events = await read_topic(settings, settings.topics.events, 15, settle=2.0)
        dlq = await read_topic(settings, settings.topics.dlq, 1, settle=1.0)
        assert await wait_for(lambda: _all_committed(settings, group, 16))

    ids = [event_from_avro(CODEC.decode(r.value)).event_id for r in events]
    assert ids == [f"in-{i}" for i in range(15)], "each inbound record once, in order"
    assert [r.value for r in dlq] == [b"[]"]


async def test_aborted_writes_are_invisible_and_the_round_is_retried(settings, monkeypatch):
    """A round whose transaction fails leaves nothing visible to read_committed readers, and the
    records are processed again from the committed offset."""
    from services.ingest import inbound as inbound_module

    failures = {"left": 1}
    real = inbound_module.InboundConsumer._transaction

    async def flaky(self, producer, tp, records, next_offset):
        if failures["left"]:
            failures["left"] -= 1
            await producer.begin_transaction()
            for r in records:
                await producer.send(r.topic, r.value, key=r.key, headers=r.headers)
            await producer.flush()   # the records reach the log, then the transaction is aborted
            await inbound_module._abort_quietly(producer)
            raise RuntimeError("injected failure after the sends")
        return await real(self, producer, tp, records, next_offset)

    monkeypatch.setattr(inbound_module.InboundConsumer, "_transaction", flaky)
    events_in = [good(i, lead="L-abort") for i in range(5)]
    await produce(settings, settings.topics.inbound, [(b"L-abort", json.dumps(e).encode()) for e in events_in])
    async with ingest_client(settings, fast_options(consume_inbound=True)) as client:
        events = await read_topic(settings, settings.topics.events, 5, settle=2.0)
        assert failures["left"] == 0
        registry = service_of(client).registry
        assert registry.get_sample_value("leadflow_errors_total", {"service": "ingest", "kind": "publish"}) == 1
    assert [event_from_avro(CODEC.decode(r.value)).event_id for r in events] == [f"in-{i}" for i in range(5)]
