"""The lifecycle service (a real process) while its PostgreSQL is stopped and events keep
arriving on leadflow.events: it pauses its partitions instead of buffering, so its resident memory
stays flat through the outage; once PostgreSQL is back it resumes by itself, and every event is
stored and published exactly once."""
from __future__ import annotations

import asyncio
import time
import uuid

import psutil
import pytest

from services.common.config import Secret
from services.lifecycle.synthetic import expected_transitions, lead_stream, produce_events
from services.stack.postgres_node import PostgresNode
from services.stack.process import free_port
from tests.faults.lifecycle_harness import (
    ServiceProcess, check_exactly_once, count_stored, fetch_store, read_topic, wait_for,
)

pytestmark = pytest.mark.stack

OUTAGE_S = 20


async def test_postgres_down_under_a_steady_stream_memory_flat_nothing_lost(stack, settings, tmp_path):
    node = PostgresNode(stack.home / f"outage-pg-{uuid.uuid4().hex[:6]}", free_port(), database="leadflow_outage",
                        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
    await asyncio.to_thread(node.start)
    s = settings.with_changes(postgres_dsn=Secret(node.dsn))
    events = lead_stream(1000, seed=31, duplicate_share=0.0)
    expected = expected_transitions(events)
    size = len(events) // 50 + 1
    chunks = [events[i:i + size] for i in range(0, len(events), size)]
    lifecycle = ServiceProcess(s, "pg-outage", tmp_path)
    try:
        lifecycle.start()

        async def stream() -> None:      # ~50 chunks over about 40 s
            for chunk in chunks:
                await produce_events(s, chunk)
                await asyncio.sleep(0.8)

        producer = asyncio.create_task(stream())
        await wait_for(lambda: _stored_past(s, len(expected) // 10), 90, what="a tenth of the events stored")
        rss = psutil.Process(lifecycle.proc.pid)
        before = rss.memory_info().rss
        await asyncio.to_thread(node.stop)
        samples = []
        until = time.monotonic() + OUTAGE_S
        while time.monotonic() < until:
            assert lifecycle.alive, f"the lifecycle exited during the outage:\n{lifecycle.log_tail()}"
            samples.append(rss.memory_info().rss)
            await asyncio.sleep(0.5)
        await asyncio.to_thread(node.start)
        await producer
        await wait_for(lambda: _stored_past(s, len(expected)), 120, what="every event stored after the outage")

        async def published_all():
            return len(await read_topic(s, s.topics.lifecycle)) >= len(expected)

        await wait_for(published_all, 120, what="every event published")
        rows, _leads, _dups, _offsets = await fetch_store(s)
        check_exactly_once(expected, rows, await read_topic(s, s.topics.lifecycle))
        third = len(samples) // 3
        print(f"\nlifecycle RSS: {before / 2**20:.0f} MiB before, peak {max(samples) / 2**20:.0f} MiB during "
              f"{OUTAGE_S} s of PostgreSQL down while {len(events)} events streamed in over ~40 s")
        assert max(samples) < before + (100 << 20), "memory grew by more than 100 MiB during the outage"
        assert max(samples[-third:]) < max(samples[:third]) + (30 << 20), "memory kept growing during the outage"
    finally:
        lifecycle.terminate(30)
        await asyncio.to_thread(node.stop)


async def _stored_past(settings, n: int) -> bool:
    try:
        return await count_stored(settings) >= n
    except OSError:
        return False    # the server is away
