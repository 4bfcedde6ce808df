"""The lifecycle service killed with SIGKILL at random points while 100,000 events stream through:
afterwards every event is in the store exactly once, and every (lead_id, version) is exactly once
and in order on leadflow.lifecycle as a read_committed consumer sees it. Then the same with two
instances sharing the partitions, one of them killed midway.

The service runs as a subprocess (`python -m services.lifecycle`) against the session's real Kafka
and Postgres, with this test's topic prefix and schema. Set LEADFLOW_CRASH_SEED to replay a run.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import asyncpg
import pytest
from aiokafka import TopicPartition

from services.common.kafka import make_consumer
from services.lifecycle.service import default_group_id
from services.lifecycle.synthetic import expected_transitions, lead_stream, produce_events
from tests.faults.lifecycle_harness import (
    ServiceProcess, check_exactly_once, count_stored, fetch_store, read_topic, wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

N_LEADS = 10_500          # about 10 events each: over 100,000 distinct events, plus 1 % re-sent


def _seed() -> int:
    return int(os.environ.get("LEADFLOW_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))


async def _produce_streaming(settings, events, chunks: int, pause: float) -> None:
    """Produce the events in chunks, so they keep arriving while the service is being killed."""
    size = -(-len(events) // chunks)
    for i in range(0, len(events), size):
        await produce_events(settings, events[i:i + size])
        await asyncio.sleep(pause)


async def _committed_offsets(settings, group_id: str) -> dict[int, int | None]:
    consumer = make_consumer(settings, group_id)
    await consumer.start()
    try:
        out = {}
        for p in range(settings.topic_partitions):
            out[p] = await consumer.committed(TopicPartition(settings.topics.events, p))
        return out
    finally:
        await consumer.stop()


async def _end_offsets(settings) -> dict[int, int]:
    consumer = make_consumer(settings, None)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.events, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()


async def _verify(settings, events, expected) -> dict:
    rows, leads, duplicates, offsets = await fetch_store(settings)
    topic = await read_topic(settings, settings.topics.lifecycle, timeout=120)
    check_exactly_once(expected, rows, topic)
    assert len(topic) == len(expected) == len(rows)
    # Every re-sent event refused exactly once, with its own input position.
    assert len(duplicates) == len(events) - len(expected)
    assert len({(r["kafka_partition"], r["kafka_offset"]) for r in duplicates}) == len(duplicates)
    # Projection: one row per lead, at its last version.
    last = {}
    for t in expected:
        last[t.lead_id] = t
    assert {r["lead_id"]: (r["version"], r["stage"]) for r in leads} == {
        lead: (t.version, t.to_stage) for lead, t in last.items()}
    # Stored up to == published up to == the end of each input partition.
    ends = await _end_offsets(settings)
    stored = {r["partition"]: r["next_offset"] for r in offsets}
    committed = await _committed_offsets(settings, default_group_id(settings))
    assert stored == ends, (stored, ends)
    assert committed == ends, (committed, ends)
    return {"events": len(events), "stored": len(rows), "published": len(topic), "duplicates": len(duplicates)}


def _log_counts(*procs: ServiceProcess) -> dict[str, int]:
    text = "".join(p.log_path.read_text(errors="replace") for p in procs if p.log_path.exists())
    return {
        "starts": text.count("=== start"),
        "republished_partitions": text.count("re-published"),
        "errors": text.count(" ERROR ") + text.count("Traceback"),
    }


async def test_sigkill_at_random_points(settings, tmp_path):
    seed = _seed()
    rng = random.Random(seed)
    print(f"\nLEADFLOW_CRASH_SEED={seed}")
    events = lead_stream(N_LEADS, seed=seed % 1000 + 1)
    expected = expected_transitions(events)
    assert len(expected) >= 100_000
    started = time.monotonic()

    service = ServiceProcess(settings, "crash", tmp_path)
    service.start()
    producer = asyncio.create_task(_produce_streaming(settings, events, chunks=10, pause=0.4))
    try:
        # Kills at random amounts of progress (mid-stream, at whatever point a round is in), and
        # one shortly after a restart (while it joins the group or recovers its partitions).
        total = len(expected)
        thresholds = sorted(rng.sample(range(total // 20, total * 9 // 10), 4))
        early = rng.randrange(len(thresholds))
        kills: list[int] = []
        for i, threshold in enumerate(thresholds):
            # mid-stream: past the threshold, and the restarted service storing again
            target = max(threshold, (kills[-1] if kills else 0) + rng.randint(1, 3000))
            await wait_for(lambda: _stored_at_least(settings, target), 180, interval=0.05,
                           what=f"{target} events stored (kill {i + 1})")
            await asyncio.sleep(rng.uniform(0, 0.3))
            kills.append(await count_stored(settings))
            service.kill()
            service.start()
            if i == early:
                await asyncio.sleep(rng.uniform(0.2, 3.0))
                kills.append(await count_stored(settings))
                service.kill()
                service.start()
        await producer
        await wait_for(lambda: _stored_at_least(settings, total), 240, interval=0.25, what="all events stored")
        await asyncio.sleep(1.0)   # let the last transactions commit before stopping it
        assert service.terminate() == 0, service.log_tail()
        result = await _verify(settings, events, expected)
    except BaseException:
        print(service.log_tail(80))
        raise
    finally:
        producer.cancel()
        service.kill()
    print(f"kills at stored counts {kills}; {result}; {_log_counts(service)}; "
          f"{time.monotonic() - started:.1f}s")


async def test_two_instances_one_killed_midway(settings, tmp_path):
    seed = _seed()
    rng = random.Random(seed)
    print(f"\nLEADFLOW_CRASH_SEED={seed}")
    events = lead_stream(6_000, seed=seed % 1000 + 7)
    expected = expected_transitions(events)
    started = time.monotonic()

    a = ServiceProcess(settings, "a", tmp_path)
    b = ServiceProcess(settings, "b", tmp_path)
    a.start()
    b.start()
    producer = asyncio.create_task(_produce_streaming(settings, events, chunks=6, pause=0.5))
    try:
        total = len(expected)
        kill_at = rng.randrange(total // 4, total // 2)
        await wait_for(lambda: _stored_at_least(settings, kill_at), 180, interval=0.05, what="progress before the kill")
        killed = await count_stored(settings)
        b.kill()   # A takes over B's partitions once B's session expires
        await wait_for(lambda: _stored_at_least(settings, min(total, killed + total // 5)), 180, interval=0.1,
                       what="A carrying on alone")
        b.start()  # and a rebalance again, handing partitions back to B
        await producer
        await wait_for(lambda: _stored_at_least(settings, total), 240, interval=0.25, what="all events stored")
        await asyncio.sleep(1.0)
        assert b.terminate() == 0, b.log_tail()
        assert a.terminate() == 0, a.log_tail()
        result = await _verify(settings, events, expected)
    except BaseException:
        print(a.log_tail(60))
        print(b.log_tail(60))
        raise
    finally:
        producer.cancel()
        a.kill()
        b.kill()
    print(f"B killed at {killed} stored; {result}; {_log_counts(a, b)}; {time.monotonic() - started:.1f}s")


async def _stored_at_least(settings, n: int) -> bool:
    return await count_stored(settings) >= n


async def test_zombie_instance_after_sigstop(settings, tmp_path):
    """Instance A is frozen (SIGSTOP) past its session timeout while it may be in the middle of a
    round; B takes its partitions (fencing A's producers). Then A runs again, still believing it
    owns them, with whatever it had in hand: the store and the topic must stay exactly once."""
    seed = _seed()
    rng = random.Random(seed)
    print(f"\nLEADFLOW_CRASH_SEED={seed}")
    events = lead_stream(5_000, seed=seed % 1000 + 13)
    expected = expected_transitions(events)
    started = time.monotonic()

    a = ServiceProcess(settings, "a", tmp_path)
    b = ServiceProcess(settings, "b", tmp_path)
    a.start()
    b.start()
    producer = asyncio.create_task(_produce_streaming(settings, events, chunks=5, pause=0.5))
    try:
        total = len(expected)
        freeze_at = rng.randrange(total // 5, total // 2)
        await wait_for(lambda: _stored_at_least(settings, freeze_at), 180, interval=0.05, what="progress")
        frozen = await count_stored(settings)
        a.proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(9)   # > the 6 s session timeout: B is assigned everything
        finally:
            a.proc.send_signal(signal.SIGCONT)
        await producer
        await wait_for(lambda: _stored_at_least(settings, total), 240, interval=0.25, what="all events stored")
        await asyncio.sleep(1.0)
        assert a.terminate() == 0, a.log_tail()
        assert b.terminate() == 0, b.log_tail()
        result = await _verify(settings, events, expected)
    except BaseException:
        print(a.log_tail(60))
        print(b.log_tail(60))
        raise
    finally:
        producer.cancel()
        if a.alive:
            a.proc.send_signal(signal.SIGCONT)
        a.kill()
        b.kill()
    zombie = a.log_path.read_text(errors="replace")
    print(f"A frozen at {frozen} stored; {result}; {_log_counts(a, b)}; "
          f"A saw itself fenced: {zombie.count('fenced')}, offsets moved under it: {zombie.count('moved under')}; "
          f"{time.monotonic() - started:.1f}s")


async def test_postgres_connections_killed_midstream(settings, tmp_path):
    """The service's Postgres connections are terminated at random points (a write may die
    before, during or after its COMMIT, so its outcome is unknown to the service): it recovers
    from what the store says, and the store and the topic stay exactly once."""
    seed = _seed()
    rng = random.Random(seed)
    print(f"\nLEADFLOW_CRASH_SEED={seed}")
    events = lead_stream(3_000, seed=seed % 1000 + 21)
    expected = expected_transitions(events)
    started = time.monotonic()
    service = ServiceProcess(settings, "pgkill", tmp_path)
    service.start()
    producer = asyncio.create_task(_produce_streaming(settings, events, chunks=6, pause=0.3))
    terminated = 0
    try:
        total = len(expected)
        for threshold in sorted(rng.sample(range(total // 10, total * 9 // 10), 3)):
            await wait_for(lambda: _stored_at_least(settings, threshold), 180, interval=0.02, what="progress")
            conn = await asyncpg.connect(settings.postgres_dsn.reveal())
            try:
                terminated += await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                    "leadflow-lifecycle")
            finally:
                await conn.close()
        await producer
        await wait_for(lambda: _stored_at_least(settings, total), 240, interval=0.25, what="all events stored")
        await asyncio.sleep(1.0)
        assert service.terminate() == 0, service.log_tail()
        result = await _verify(settings, events, expected)
    except BaseException:
        print(service.log_tail(80))
        raise
    finally:
        producer.cancel()
        service.kill()
    log_text = service.log_path.read_text(errors="replace")
    assert service.starts == 1 and terminated > 0
    print(f"{terminated} connections terminated; {result}; rounds failed: {log_text.count('recovering')}; "
          f"{time.monotonic() - started:.1f}s")
