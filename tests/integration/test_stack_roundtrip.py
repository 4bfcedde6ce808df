"""The foundation works end to end: a record through the real Kafka, a row through the real
PostgreSQL, and plain-SQL migrations applied once."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from services.common.kafka import lead_key, make_consumer, make_producer
from services.common.postgres import MigrationError, connect, create_pool, migrate

pytestmark = pytest.mark.stack


async def test_message_round_trips_through_real_kafka(settings):
    producer = make_producer(settings)
    await producer.start()
    try:
        meta = await producer.send_and_wait(settings.topics.events, b"hello leadflow", key=lead_key("L-1"))
    finally:
        await producer.stop()
    consumer = make_consumer(settings, None)
    tp = TopicPartition(settings.topics.events, meta.partition)
    consumer.assign([tp])
    await consumer.start()
    try:
        consumer.seek(tp, meta.offset)
        batch = await consumer.getmany(tp, timeout_ms=10000)
    finally:
        await consumer.stop()
    records = batch[tp]
    assert [(r.key, r.value) for r in records] == [(b"L-1", b"hello leadflow")]


async def test_same_key_lands_on_same_partition(settings):
    producer = make_producer(settings)
    await producer.start()
    try:
        metas = await asyncio.gather(*[
            producer.send_and_wait(settings.topics.events, f"v{i}".encode(), key=lead_key("lead-42"))
            for i in range(5)
        ])
    finally:
        await producer.stop()
    assert len({m.partition for m in metas}) == 1
    offsets = sorted(m.offset for m in metas)
    assert offsets == list(range(offsets[0], offsets[0] + 5))


async def test_row_round_trips_through_real_postgres(settings):
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE probe (id int PRIMARY KEY, note text NOT NULL)")
            await conn.execute("INSERT INTO probe VALUES ($1, $2)", 1, "stored")
            row = await conn.fetchrow("SELECT id, note FROM probe")
            schema = await conn.fetchval("SELECT current_schema()")
    finally:
        await pool.close()
    assert dict(row) == {"id": 1, "note": "stored"}
    assert schema == settings.postgres_schema


async def test_migrations_apply_once_in_order(settings, tmp_path: Path):
    (tmp_path / "0001_create_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    (tmp_path / "0002_add_name.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    conn = await connect(settings)
    try:
        assert await migrate(conn, "probe", tmp_path) == ["0001_create_things.sql", "0002_add_name.sql"]
        assert await migrate(conn, "probe", tmp_path) == []
        await conn.execute("INSERT INTO things (id, name) VALUES (1, 'x')")
        (tmp_path / "0001_create_things.sql").write_text("CREATE TABLE things (id bigint PRIMARY KEY);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, "probe", tmp_path)
    finally:
        await conn.close()


async def test_migration_gap_is_refused(tmp_path: Path, settings):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    conn = await connect(settings)
    try:
        with pytest.raises(MigrationError, match="expected migration 0002"):
            await migrate(conn, "gap", tmp_path)
    finally:
        await conn.close()


async def test_pool_keeps_the_schema_after_connections_are_reused(settings):
    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        for _ in range(3):
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_schema()") == settings.postgres_schema
    finally:
        await pool.close()
