"""Contract v2 on the real stack: the live pipeline's SLA outcomes are `leadflow replay`'s.

A month of November traffic (over 5,000 events, over 100 leads, late arrivals and redeliveries)
goes through the real services: half of the leads over `POST /v1/events`, the other half into
`leadflow.inbound` with a plain Kafka producer (each lead through one path, in its log order).
The SLA monitor starts only once a backlog of over 1,000 lifecycle records waits for it, and is
killed with SIGKILL twice while it works. Then, read from outside:
- `sla_clocks` and `sla_windows` (the monitor's state), and the last record of every clock and
  window on `leadflow.sla`, against
- `leadflow replay EVENTS --until <now>` over the same events (the CLI, a separate process), and
  `leadflow backtest`'s judging of the stored history under the same policy;
with 0 missing, 0 extra and 0 different final outcomes (`corrected` aside: whether a breach had
been declared before its deciding event came depends on when things ran, by nature).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiokafka import TopicPartition

from services.bench.traffic import generate_events
from services.common.config import settings_env
from services.common.kafka import lead_key, make_consumer, make_producer
from services.common.timefmt import format_utc
from services.sla_monitor.domain import load_policy
from services.sla_monitor.domain.clocks import Clock, Window
from services.stack.process import free_port
from tests.faults.lifecycle_harness import read_topic, wait_for
from tests.faults.pipeline_procs import ServiceProc
from tests.integration.sla.sla_harness import read_sla

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EVENTS = 5200
BACKLOG = 1200


def november_stream(seed: int = 12) -> list[dict]:
    """Bench traffic moved into November 2026, then per lead: some events delivered later than
    events that happened after them (late arrivals), and some delivered twice (redeliveries)."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, 7, 0, tzinfo=timezone.utc)
    events = list(generate_events(EVENTS, seed=seed, start=start, concurrent_leads=120, mean_gap_seconds=420))
    by_lead: dict[str, list[dict]] = {}
    for event in events:
        by_lead.setdefault(event["lead_id"], []).append(event)
    for log in by_lead.values():
        if len(log) > 3 and rng.random() < 0.3:  # a late arrival: delivered a few positions later
            i = rng.randrange(1, len(log) - 1)
            late = log.pop(i)
            log.insert(min(len(log), i + rng.randint(1, 3)), late)
        if rng.random() < 0.1:  # a redelivery of an event already sent
            log.insert(len(log), dict(rng.choice(log)))
    # The leads' logs interleaved again in (roughly) time order, each lead's own order kept,
    # after a first event at 1 November 00:00 in Berlin (so November's windows are judged).
    cursors = {lead: 0 for lead in by_lead}
    stream: list[dict] = [{"event_id": "first", "lead_id": "L-first", "type": "lead.created",
                           "occurred_at": "2026-10-31T23:00:00Z", "source": "website",
                           "payload": {"channel": "event", "segment": "smb", "campaign": "trade-fair"}}]
    while cursors:
        lead = min(cursors, key=lambda l: (by_lead[l][cursors[l]]["occurred_at"], l))
        stream.append(by_lead[lead][cursors[lead]])
        cursors[lead] += 1
        if cursors[lead] == len(by_lead[lead]):
            del cursors[lead]
    return stream


async def end_offsets(settings, topic: str) -> dict[int, int]:
    consumer = make_consumer(settings, None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def query(settings, sql: str):
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def table_exists(settings, name: str) -> bool:
    rows = await query(settings, f"SELECT to_regclass('{name}') IS NOT NULL AS present")
    return rows[0]["present"]


def comparable(line: dict) -> str:
    return json.dumps({k: v for k, v in line.items() if k != "corrected"}, sort_keys=True)


def topic_line(record: dict) -> dict:
    """The outcome line (contract §5) a leadflow.sla record states."""
    t = lambda value: None if value is None else format_utc(value)  # noqa: E731
    line = {"sla": record["sla"], "lead_id": record["lead_id"], "scope": dict(record["scope"]),
            "outcome": record["outcome"], "started_at": t(record["started_at"]), "due_at": t(record["due_at"]),
            "stopped_at": t(record["stopped_at"])}
    if record["window_start"] is not None:
        line.update(window_start=t(record["window_start"]), window_end=t(record["window_end"]),
                    count=record["count"], target=record["target"])
        if record["sla"] == "marketing_weekly_volume":
            line["fit_share"] = record["fit_share"]
    if record["required"] is not None:
        line.update(attempts=record["attempts"], required=record["required"])
    return line


def note(text: str) -> None:
    print(f"{datetime.now(timezone.utc):%H:%M:%S} {text}", flush=True)


def difference(name: str, got: list[str], expected: list[str]) -> str:
    missing = Counter(expected) - Counter(got)
    extra = Counter(got) - Counter(expected)
    return (f"{name}: {sum(missing.values())} missing, {sum(extra.values())} extra; "
            f"missing e.g. {list(missing)[:3]}, extra e.g. {list(extra)[:3]}")


SEED_AGREEMENTS = REPO / "deploy" / "policy" / "seed-agreements.toml"


@pytest.mark.parametrize("policy_file", [None, SEED_AGREEMENTS], ids=["built-in", "seed-agreements"])
async def test_live_outcomes_equal_replay_through_backlog_and_kills(settings, tmp_path, policy_file):
    """With the built-in policy, and with every agreement of the seeds (volume goals per day,
    month, owner, team and campaign, paces, enterprise speed-to-lead starting on sql)."""
    stream = november_stream()
    leads = sorted({e["lead_id"] for e in stream})
    assert len(stream) >= 5000 and len(leads) >= 100
    http_leads = set(leads[::2])
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in stream))

    ports = dict(ingest_port=free_port(), lifecycle_metrics_port=free_port(), sla_metrics_port=free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(settings_env(settings.with_changes(**ports, sla_policy_file=str(policy_file or ""))))
    env.update({"PYTHONUNBUFFERED": "1", "LEADFLOW_SLA_METRICS_HOST": "127.0.0.1",
                "LEADFLOW_SLA_TIMER_INTERVAL_S": "0.5", "LEADFLOW_SLA_SESSION_TIMEOUT_S": "6",
                "LEADFLOW_SLA_HEARTBEAT_INTERVAL_S": "1", "LEADFLOW_SLA_CATCHUP_GRACE_S": "5",
                "LEADFLOW_SLA_BATCH_MAX": "300",
                "LEADFLOW_LIFECYCLE_SESSION_TIMEOUT_MS": "6000", "LEADFLOW_LIFECYCLE_HEARTBEAT_INTERVAL_MS": "1000"})
    ingest = ServiceProc("ingest", "services.ingest", ports["ingest_port"], env, tmp_path)
    lifecycle = ServiceProc("lifecycle", "services.lifecycle", ports["lifecycle_metrics_port"], env, tmp_path)
    monitor = ServiceProc("sla", "services.sla_monitor", ports["sla_metrics_port"],
                          {**env, "LEADFLOW_INSTANCE_ID": "sla-a"}, tmp_path)
    ingest.start()
    lifecycle.start()
    url = f"http://127.0.0.1:{ports['ingest_port']}/v1/events"

    async def lifecycle_records() -> int:
        return sum((await end_offsets(settings, settings.topics.lifecycle)).values())

    async def send(part: list[dict]) -> None:
        over_http = [e for e in part if e["lead_id"] in http_leads]
        to_inbound = [e for e in part if e["lead_id"] not in http_leads]
        async with aiohttp.ClientSession() as session:
            for i in range(0, len(over_http), 250):
                for attempt in range(60):
                    try:
                        async with session.post(url, json=over_http[i:i + 250]) as response:
                            if response.status == 503:  # not ready (Kafka): nothing accepted, retry
                                await asyncio.sleep(1)
                                continue
                            assert response.status == 202, await response.text()
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(1)  # ingest still starting
                else:
                    raise AssertionError("ingest never answered")
        producer = make_producer(settings)
        await producer.start()
        try:
            for event in to_inbound:
                await producer.send(settings.topics.inbound, json.dumps(event).encode(), key=lead_key(event["lead_id"]))
            await producer.flush()
        finally:
            await producer.stop()

    try:
        # 1. A backlog before the monitor ever runs.
        first, rest = stream[:BACKLOG + 300], stream[BACKLOG + 300:]
        await asyncio.wait_for(send(first), 180)
        note(f"sent {len(first)} events")
        await wait_for(lambda: _at_least(lifecycle_records, BACKLOG), 180, what=f"{BACKLOG} lifecycle records")
        monitor.start()
        note("backlog ready, monitor started")
        # 2. The rest in three parts, the monitor killed with SIGKILL after each of the first two.
        thirds = [rest[: len(rest) // 3], rest[len(rest) // 3: 2 * len(rest) // 3], rest[2 * len(rest) // 3:]]
        for number, part in enumerate(thirds):
            await asyncio.wait_for(send(part), 180)
            note(f"sent part {number} ({len(part)} events)")
            if number < 2:
                await asyncio.sleep(2 + number * 3)  # mid-batch, mid-commit: wherever it is
                monitor.kill()
                monitor.start()
                note("monitor killed and restarted")
        # 3. Everything applied: the lifecycle has every event, the monitor every record.
        unique = len({e["event_id"] for e in stream})

        async def stored_all():
            if not await table_exists(settings, "lead_events"):
                return False
            rows = await query(settings, "SELECT count(*) AS n FROM lead_events")
            return rows[0]["n"] == unique

        await wait_for(stored_all, 300, what=f"{unique} events in the event store")
        note("every event stored")
        # The offset after each partition's last record (a transaction's commit marker follows it).
        async def published_all():
            records = await read_topic(settings, settings.topics.lifecycle)
            return records if len(records) == unique else None

        ends: dict[int, int] = {}
        for partition, offset, _key, _record in await wait_for(published_all, 120, what="leadflow.lifecycle"):
            ends[partition] = max(ends.get(partition, 0), offset + 1)

        async def monitor_caught_up():
            if not await table_exists(settings, "sla_input_offsets"):
                return False
            rows = await query(settings, "SELECT partition, next_offset FROM sla_input_offsets")
            done = {r["partition"]: r["next_offset"] for r in rows}
            return all(done.get(p, 0) >= end for p, end in ends.items() if end > 0)

        await wait_for(monitor_caught_up, 300, what="the SLA monitor to apply every lifecycle record")
        await asyncio.sleep(3)  # a few timer ticks at the wall clock
        monitor.terminate()
        until = datetime.now(timezone.utc).replace(microsecond=0)
    finally:
        for service in (monitor, lifecycle, ingest):
            service.terminate()

    policy_args = ["--policy", str(policy_file)] if policy_file else []
    replay = subprocess.run([sys.executable, "-m", "services.cli", "replay", str(events_file), "--until",
                             format_utc(until), *policy_args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    expected = sorted(comparable(json.loads(line)) for line in replay.stdout.splitlines())
    kinds = Counter(json.loads(line)["outcome"] for line in replay.stdout.splitlines())
    assert kinds["breached"] and kinds["met"] and kinds["cancelled"], kinds  # the stream exercises them
    slas = Counter(json.loads(line)["sla"] for line in replay.stdout.splitlines())
    assert all(slas[rule.name] for rule in load_policy(policy_file).rules), slas  # every SLA has outcomes

    clocks = [Clock.from_snapshot(json.loads(r["snapshot"])).outcome_line()
              for r in await query(settings, "SELECT snapshot FROM sla_clocks")]
    windows = [Window.from_snapshot(json.loads(r["snapshot"])).outcome_line()
               for r in await query(settings, "SELECT snapshot FROM sla_windows WHERE outcome IS NOT NULL")]
    state = sorted(comparable(line) for line in clocks + windows)
    assert state == expected, difference("sla_clocks + sla_windows", state, expected)

    last: dict[str, dict] = {}
    for record in await read_sla(settings, timeout=120):
        last[record["clock_id"]] = record  # in outbox order: the latest state of each
    # An open contact_attempts clock counts attempts without an emission: its record on the topic
    # is its start (attempts 0). Every other count is stated by the record that decided it.
    lines = [topic_line(r) for r in last.values()]
    on_topic = sorted(comparable(line) for line in lines)
    expected_on_topic = sorted(comparable({**line, "attempts": 0} if line["outcome"] == "open" and "attempts" in line
                                          else line) for line in map(json.loads, replay.stdout.splitlines()))
    assert on_topic == expected_on_topic, difference("leadflow.sla", on_topic, expected_on_topic)
    assert {r["kind"] for r in last.values()} >= {"breached", "met"}

    # leadflow backtest judges the stored history with the same code: the same outcomes.
    from services.backtest import judge, read_history

    judged = judge(load_policy(policy_file), await read_history(settings, until), until)
    by_key = Counter((j.sla, j.lead_id, j.outcome, j.started_at) for j in judged.values() if j.lead_id)
    replayed = Counter((line["sla"], line["lead_id"], line["outcome"], line["started_at"])
                       for line in map(json.loads, replay.stdout.splitlines()) if line["lead_id"])
    assert Counter((s, lead, o, format_utc(t)) for (s, lead, o, t) in by_key.elements()) == replayed


async def _at_least(count_fn, n: int) -> bool:
    return await count_fn() >= n
