"""SIGTERM in mid-stream: the lifecycle and the SLA monitor (real processes, real Kafka and
PostgreSQL) each stopped twice while events keep arriving, and restarted. Each stops cleanly
(exit status 0, within the time an orchestrator grants) having finished or abandoned its batch in
flight, and after the restarts:
- the event store and leadflow.lifecycle hold each event exactly once, in order per lead;
- the SLA monitor consumed every lifecycle record, and leadflow.sla holds each of its outbox rows
  exactly once."""
from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from services.lifecycle.synthetic import expected_transitions, lead_stream, produce_events
from services.stack.process import free_port
from tests.faults.lifecycle_harness import (
    ServiceProcess, check_exactly_once, count_stored, fetch_store, read_topic, wait_for,
)
from tests.integration.sla.sla_harness import MonitorProcess, read_sla, service_env, write_policy

pytestmark = pytest.mark.stack

STOP_WITHIN_S = 30       # well inside Kubernetes' default grace period (30 s)


async def _sla_consumed(settings) -> dict[int, int]:
    conn = await asyncpg.connect(settings.postgres_dsn.reveal(), server_settings={"search_path": settings.postgres_schema})
    try:
        if await conn.fetchval("SELECT to_regclass('sla_input_offsets')") is None:
            return {}
        rows = await conn.fetch("SELECT partition, next_offset FROM sla_input_offsets WHERE topic = $1",
                                settings.topics.lifecycle)
        return {r["partition"]: r["next_offset"] for r in rows}
    finally:
        await conn.close()


async def _emission_ids(settings) -> set[int]:
    conn = await asyncpg.connect(settings.postgres_dsn.reveal(), server_settings={"search_path": settings.postgres_schema})
    try:
        return {r["id"] for r in await conn.fetch("SELECT id FROM sla_emissions")}
    finally:
        await conn.close()


def _sigterm(service, name: str) -> float:
    started = time.monotonic()
    code = service.terminate(STOP_WITHIN_S)
    took = time.monotonic() - started
    assert code == 0, f"{name} exited with {code} after SIGTERM"
    assert took < STOP_WITHIN_S, f"{name} took {took:.1f}s to stop"
    return took


async def test_sigterm_in_mid_stream_then_restart_leaves_no_duplicate(settings, tmp_path):
    events = lead_stream(500, seed=29, duplicate_share=0.02)
    expected = expected_transitions(events)
    lifecycle = ServiceProcess(settings, "graceful", tmp_path, LEADFLOW_LIFECYCLE_ROUND_INTERVAL_MS="20")
    policy = write_policy(tmp_path, due="1h")
    monitor = MonitorProcess(service_env(settings, policy, metrics_port=free_port(),
                                         LEADFLOW_SLA_SESSION_TIMEOUT_S="6", LEADFLOW_SLA_HEARTBEAT_INTERVAL_S="1"),
                             tmp_path / "sla_monitor.log")
    chunks = [events[i:i + len(events) // 25 + 1] for i in range(0, len(events), len(events) // 25 + 1)]

    async def stream() -> None:
        for chunk in chunks:
            await produce_events(settings, chunk)
            await asyncio.sleep(0.4)

    stops: list[tuple[str, float]] = []
    lifecycle.start()
    monitor.start()
    try:
        producer = asyncio.create_task(stream())
        for share in (0.2, 0.5):
            await wait_for(lambda: _stored_past(settings, int(len(expected) * share)), 120,
                           what=f"{share:.0%} of the events stored")
            stops.append(("lifecycle", _sigterm(lifecycle, "lifecycle")))
            lifecycle.start()
            await wait_for(lambda: _sla_past(settings, int(len(expected) * share * 0.5)), 120,
                           what="the SLA monitor consuming")
            stops.append(("sla_monitor", _sigterm(monitor, "sla_monitor")))
            monitor.start()
        await producer
        await wait_for(lambda: _stored_past(settings, len(expected)), 120, what="every event stored")

        async def published_all():
            return len(await read_topic(settings, settings.topics.lifecycle)) >= len(expected)

        await wait_for(published_all, 120, what="every event published")
        topic = await read_topic(settings, settings.topics.lifecycle)
        rows, _leads, _dups, _offsets = await fetch_store(settings)
        check_exactly_once(expected, rows, topic)

        last = {}
        for partition, offset, _key, _rec in topic:
            last[partition] = max(last.get(partition, -1), offset)

        async def sla_consumed_all():
            consumed = await _sla_consumed(settings)
            return all(consumed.get(p, 0) > off for p, off in last.items())

        await wait_for(sla_consumed_all, 120, what="the SLA monitor consuming every lifecycle record")
        emitted = await _emission_ids(settings)
        assert emitted, "the SLA monitor emitted nothing"

        async def relayed_all():
            return len(await read_sla(settings)) >= len(emitted)

        await wait_for(relayed_all, 60, what="every SLA emission on leadflow.sla")
        records = await read_sla(settings)
        outbox_ids = [r["_outbox_id"] for r in records]
        assert len(outbox_ids) == len(set(outbox_ids)), "an SLA emission is on leadflow.sla twice"
        assert set(outbox_ids) == emitted
    finally:
        lifecycle.terminate(STOP_WITHIN_S)
        monitor.terminate(STOP_WITHIN_S)
    assert [name for name, _ in stops] == ["lifecycle", "sla_monitor"] * 2
    print(f"\nSIGTERM to stop: {', '.join(f'{name} {took:.1f}s' for name, took in stops)}")


async def _stored_past(settings, n: int) -> bool:
    return await count_stored(settings) >= n


async def _sla_past(settings, n: int) -> bool:
    return sum((await _sla_consumed(settings)).values()) >= n
