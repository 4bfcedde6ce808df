"""Shared by the lifecycle integration and fault tests: run the service (in-process or as a
subprocess), read leadflow.lifecycle as a read_committed consumer, and check the store and the
topic against what the domain says the log means."""
from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import asyncpg
from aiokafka import TopicPartition

from services.common.avro_codec import AvroCodec
from services.common.config import Settings, settings_env
from services.common.kafka import make_consumer
from services.stack.process import free_port
from tests.faults.pipeline_procs import ServiceProc


async def read_raw(settings: Settings, topic: str, timeout: float = 180.0) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record a read_committed consumer sees on the topic: (partition, offset, key, value)."""
    consumer = make_consumer(settings, None, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)   # the last stable offsets under read_committed
        out = []
        deadline = time.monotonic() + timeout
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: still behind on {sorted(tp.partition for tp in pending)}")
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=20000)
            for tp, records in batches.items():
                out.extend((tp.partition, r.offset, r.key, r.value) for r in records)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return out
    finally:
        await consumer.stop()


async def topic_partitions(consumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()   # noqa: SLF001 - aiokafka has no public refresh
    return consumer.partitions_for_topic(topic) or set()


async def read_topic(settings: Settings, topic: str, schema: str = "lifecycle_record",
                     timeout: float = 60.0) -> list[tuple[int, int, bytes, dict]]:
    """Every record a read_committed consumer sees on the topic: (partition, offset, key, record)."""
    codec = AvroCodec(schema)
    return [(p, o, k, codec.decode(v)) for p, o, k, v in await read_raw(settings, topic, timeout)]


async def fetch_store(settings: Settings):
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        events = await conn.fetch(
            "SELECT lead_id, version, event_id, from_stage, to_stage, ignored, kafka_partition, kafka_offset "
            "FROM lead_events ORDER BY lead_id, version")
        leads = await conn.fetch("SELECT * FROM leads ORDER BY lead_id")
        duplicates = await conn.fetch("SELECT * FROM duplicate_events ORDER BY kafka_partition, kafka_offset")
        offsets = await conn.fetch("SELECT * FROM consumer_offsets ORDER BY partition")
        return events, leads, duplicates, offsets
    finally:
        await conn.close()


async def count_stored(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{settings.postgres_schema}".lead_events')
        if exists is None:
            return 0
        return await conn.fetchval(f'SELECT count(*) FROM "{settings.postgres_schema}".lead_events')
    finally:
        await conn.close()


def check_exactly_once(expected, events_rows, topic_records) -> None:
    """The store holds exactly the expected transitions; the topic holds each (lead_id, version)
    exactly once, in version order per lead, with the stored event and stages."""
    want = {(t.lead_id, t.version): (t.event_id, t.from_stage, t.to_stage, t.ignored) for t in expected}
    got = {}
    for r in events_rows:
        key = (r["lead_id"], r["version"])
        assert key not in got, f"stored twice: {key}"
        got[key] = (r["event_id"], r["from_stage"], r["to_stage"], r["ignored"])
    missing = want.keys() - got.keys()
    extra = got.keys() - want.keys()
    assert not missing, f"{len(missing)} events missing from the store, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} unexpected events in the store, e.g. {sorted(extra)[:5]}"
    wrong = [k for k in want if want[k] != got[k]]
    assert not wrong, f"{len(wrong)} stored events differ from the domain, e.g. {[(k, want[k], got[k]) for k in wrong[:3]]}"

    seen: dict[tuple[str, int], int] = {}
    last_version: dict[str, int] = defaultdict(int)
    partition_of: dict[str, int] = {}
    for partition, offset, key, rec in sorted(topic_records, key=lambda x: (x[0], x[1])):
        k = (rec["lead_id"], rec["version"])
        assert k not in seen, f"published twice: {k} (offsets {seen[k]} and {offset})"
        seen[k] = offset
        assert key == rec["lead_id"].encode(), f"record key {key!r} is not its lead id"
        assert partition_of.setdefault(rec["lead_id"], partition) == partition, f"lead {rec['lead_id']} on two partitions"
        assert rec["version"] == last_version[rec["lead_id"]] + 1, (
            f"out of order for {rec['lead_id']}: version {rec['version']} after {last_version[rec['lead_id']]}")
        last_version[rec["lead_id"]] = rec["version"]
        assert want.get(k) == (rec["event_id"], rec["from_stage"], rec["to_stage"], rec["ignored"]), (
            f"published record differs from the store for {k}")
        assert rec["event"]["event_id"] == rec["event_id"]
    missing = want.keys() - seen.keys()
    assert not missing, f"{len(missing)} stored events never published, e.g. {sorted(missing)[:5]}"


# --- the service as a subprocess ---------------------------------------------------------------------------

def service_env(settings: Settings, instance: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(settings_env(settings.with_changes(lifecycle_metrics_port=free_port(), instance_id=instance)))
    env.update({
        "LEADFLOW_LIFECYCLE_SESSION_TIMEOUT_MS": "6000",
        "LEADFLOW_LIFECYCLE_HEARTBEAT_INTERVAL_MS": "1000",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class ServiceProcess(ServiceProc):
    """`python -m services.lifecycle` with the test's settings; output to a log file."""

    def __init__(self, settings: Settings, instance: str, log_dir: Path, **extra_env: str) -> None:
        env = service_env(settings, instance, **extra_env)
        super().__init__(f"lifecycle-{instance}", "services.lifecycle", int(env["LEADFLOW_LIFECYCLE_METRICS_PORT"]),
                         env, log_dir)
        self.settings = settings
        self.instance = instance

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


async def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def unique_events(events: Sequence) -> int:
    return len({e.event_id for e in events})
