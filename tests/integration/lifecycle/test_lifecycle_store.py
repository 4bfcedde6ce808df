"""write_round on the real Postgres: one statement stores every table of a round, and a round
whose expected offsets are stale stores nothing at all."""
from __future__ import annotations

import pytest

from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.envelope import Event
from services.common.postgres import connect
from services.lifecycle import store
from services.lifecycle.batch import PartitionInput, decode_record, plan_round
from services.lifecycle.synthetic import START
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder

pytestmark = pytest.mark.stack

GROUP = "store-test"
TOPIC = "events-under-test"


def _round(expected: int):
    codec = AvroCodec("event_envelope")
    events = [
        Event("e1", "L1", "lead.created", START, "website", {"channel": "website", "segment": "smb"}),
        Event("e2", "L1", "lead.marketing_qualified", START, "hubspot", {"fit": "good"}),
        Event("e1", "L1", "lead.created", START, "website", {"channel": "website", "segment": "smb"}),
    ]
    values = [codec.encode(event_to_avro(e)) for e in events] + [b"not avro at all"]
    decoder = EnvelopeDecoder(codec)
    records = [decode_record(decoder, expected + i, b"L1", v) for i, v in enumerate(values)]
    return plan_round(TOPIC, [PartitionInput(0, expected, records)], {"L1": None}, set(),
                      LifecycleEncoder(AvroCodec("lifecycle_record"), codec))


async def _counts(conn) -> dict[str, int]:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("lead_events", "duplicate_events", "unreadable_records", "leads")}


async def test_one_round_fills_every_table_and_moves_the_offset(settings):
    conn = await connect(settings)
    try:
        await store.migrate_store(conn)
        await store.claim_partition(conn, GROUP, TOPIC, 0)
        await store.write_round(conn, GROUP, _round(0), {0: None})
        assert await _counts(conn) == {"lead_events": 2, "duplicate_events": 1, "unreadable_records": 1, "leads": 1}
        lead = await conn.fetchrow("SELECT stage, version FROM leads WHERE lead_id = 'L1'")
        assert (lead["stage"], lead["version"]) == ("mql", 2)
        payload = await conn.fetchval("SELECT payload->>'fit' FROM lead_events WHERE event_id = 'e2'")
        assert payload == "good"
        position = await store.claim_partition(conn, GROUP, TOPIC, 0)
        assert position.next_offset == 4
    finally:
        await conn.close()


async def test_a_stale_expected_offset_stores_nothing(settings):
    conn = await connect(settings)
    try:
        await store.migrate_store(conn)
        await store.claim_partition(conn, GROUP, TOPIC, 0)
        await store.write_round(conn, GROUP, _round(0), {0: None})
        before = await _counts(conn)
        with pytest.raises(store.OffsetConflict) as conflict:
            await store.write_round(conn, GROUP, _round(0), {0: None})   # another writer stored 0..3
        assert conflict.value.partitions == frozenset({0})
        assert await _counts(conn) == before
        assert (await store.claim_partition(conn, GROUP, TOPIC, 0)).next_offset == 4
    finally:
        await conn.close()
