"""The SLA monitor as a real process, killed with SIGKILL while clocks are open and restarted
after they are due: every breach reaches leadflow.sla exactly once (read_committed), nothing is
emitted twice across more kills, and stops that arrived while it was down are applied before
the timer judges the clocks they stop."""
from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter
from datetime import timedelta

import asyncpg
import pytest

from services.stack.process import free_port
from tests.integration.sla.sla_harness import (
    MonitorProcess,
    contact,
    lifecycle_messages,
    produce,
    read_sla,
    service_env,
    utc_now,
    wait_until,
    website_mql,
    write_policy,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DUE_S = 6


async def _count(settings, sql: str) -> int:
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{settings.postgres_schema}".sla_clocks')
        if exists is None:
            return 0
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


async def test_sigkill_with_open_clocks_each_breach_once(settings, tmp_path):
    policy = write_policy(tmp_path, due=f"{DUE_S}s")
    port = free_port()
    env = service_env(settings, policy, metrics_port=port, LEADFLOW_SLA_TIMER_INTERVAL_S="0.5",
                      LEADFLOW_SLA_BATCH_WITHIN_S="0.05", LEADFLOW_SLA_SESSION_TIMEOUT_S="6",
                      LEADFLOW_SLA_HEARTBEAT_INTERVAL_S="1", LEADFLOW_SLA_CATCHUP_GRACE_S="20")
    monitor = MonitorProcess(env, tmp_path / "sla_monitor.log")
    t0 = utc_now()
    a = [f"A{i:02d}" for i in range(1, 21)]
    b = [f"B{i:02d}" for i in range(1, 11)]
    try:
        monitor.start()
        # Phase 1: 20 website MQLs (due t0 + 6s); the first 10 are contacted at once (met).
        events = [e for lead in a for e in website_mql(lead, t0)]
        events += [contact(lead, t0 + timedelta(seconds=1)) for lead in a[:10]]
        await produce(settings, lifecycle_messages(events))
        await wait_until(lambda: _count_at_least(settings, "SELECT count(*) FROM sla_clocks", 20), 60,
                         "20 clocks stored")
        await wait_until(lambda: _kinds_at_least(settings, "started", 20), 30, "20 starts published")
        assert await _count(settings, "SELECT count(*) FROM sla_clocks WHERE outcome IS NULL") == 10
        monitor.kill()  # SIGKILL with 10 clocks open

        # Phase 2, while it is down: stops in time for 5 open clocks, late stops for 3, and 10 new
        # MQLs that will be past due when the monitor is back.
        events = [contact(lead, t0 + timedelta(seconds=2)) for lead in a[10:15]]
        events += [contact(lead, t0 + timedelta(seconds=DUE_S + 1)) for lead in a[15:18]]
        events += [e for lead in b for e in website_mql(lead, t0)]
        await produce(settings, lifecycle_messages(events))
        await asyncio.sleep(max(0.0, (t0 + timedelta(seconds=DUE_S + 2) - utc_now()).total_seconds()))

        monitor.start()  # every open clock is due now
        expected_breached = set(a[15:]) | set(b)
        await wait_until(lambda: _kinds_at_least(settings, "breached", len(expected_breached)), 60,
                         f"{len(expected_breached)} breaches published")
        monitor.kill()  # and again: nothing may be emitted twice
        monitor.start()
        await wait_until(lambda: _timer_ran_after(port, t0 + timedelta(seconds=DUE_S + 2)), 60,
                         "the restarted monitor's timer running")
        await asyncio.sleep(2.0)
        assert monitor.terminate() == 0, monitor.log()[-3000:]
    finally:
        if monitor.alive():
            monitor.kill()

    records = await read_sla(settings)
    per_clock = Counter((r["clock_id"], r["kind"]) for r in records)
    assert max(per_clock.values()) == 1, [k for k, n in per_clock.items() if n > 1]
    outcome = {r["lead_id"]: r["kind"] for r in records if r["kind"] != "started"}
    breached = {lead for lead, kind in outcome.items() if kind == "breached"}
    met = {lead for lead, kind in outcome.items() if kind == "met"}
    assert breached == expected_breached
    assert met == set(a[:15])  # the 5 stops that arrived while it was down were in time
    assert not any(r["kind"] == "corrected" for r in records)
    assert sorted(r["lead_id"] for r in records if r["kind"] == "started") == sorted(a + b)
    assert len(records) == 30 + 30
    # Breaches by the timer carry no stop; late stops decided theirs with the stop's time.
    for r in records:
        if r["kind"] == "breached":
            assert r["due_at"] == t0 + timedelta(seconds=DUE_S)
            late = r["lead_id"] in a[15:18]
            assert (r["stopped_at"] is not None) == late, r
    # The outbox and the topic agree, id for id, in order per lead.
    assert sorted(r["_outbox_id"] for r in records) == await _outbox_ids(settings)
    for lead in a + b:
        ids = [r["_outbox_id"] for r in records if r["lead_id"] == lead]
        offsets = [r["_offset"] for r in records if r["lead_id"] == lead]
        assert sorted(ids) == [i for _, i in sorted(zip(offsets, ids))]


async def _outbox_ids(settings) -> list[int]:
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        return [r["id"] for r in await conn.fetch("SELECT id FROM sla_emissions ORDER BY id")]
    finally:
        await conn.close()


async def _count_at_least(settings, sql: str, n: int) -> bool:
    return await _count(settings, sql) >= n


async def _kinds_at_least(settings, kind: str, n: int) -> bool:
    return sum(1 for r in await read_sla(settings) if r["kind"] == kind) >= n


def _timer_ran_after(port: int, after) -> bool:
    try:
        text = _metrics(port)
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("leadflow_sla_timer_last_run_timestamp_seconds "):
            return float(line.split()[1]) > after.timestamp()
    return False


async def test_standby_takes_over_from_a_killed_writer(settings, tmp_path):
    """Two standbys wait for the writer lock; SIGTERM ends a standby's wait (exit 0); when the
    writer is SIGKILLed with clocks open, the other standby takes over and breaches each once."""
    policy = write_policy(tmp_path, due=f"{DUE_S}s")
    common = dict(LEADFLOW_SLA_TIMER_INTERVAL_S="0.5", LEADFLOW_SLA_BATCH_WITHIN_S="0.05",
                  LEADFLOW_SLA_SESSION_TIMEOUT_S="6", LEADFLOW_SLA_HEARTBEAT_INTERVAL_S="1")
    writer = MonitorProcess(service_env(settings, policy, **common), tmp_path / "writer.log")
    standby = MonitorProcess(service_env(settings, policy, **common), tmp_path / "standby.log")
    other = MonitorProcess(service_env(settings, policy, **common), tmp_path / "other.log")
    refused = MonitorProcess(service_env(settings, policy, LEADFLOW_SLA_LOCK_WAIT="0", **common),
                             tmp_path / "refused.log")
    t0 = utc_now()
    leads = [f"K{i}" for i in range(5)]
    try:
        writer.start()
        await produce(settings, lifecycle_messages([e for lead in leads for e in website_mql(lead, t0)]))
        await wait_until(lambda: _kinds_at_least(settings, "started", 5), 60, "5 starts published")
        standby.start()
        other.start()
        refused.start()
        await wait_until(lambda: "waiting as a standby" in standby.log() and "waiting as a standby" in other.log(),
                         30, "both standbys waiting")
        assert refused.proc.wait(30) == 3 and "is the writer" in refused.log()
        assert other.terminate(timeout=20) == 0  # a standby stops at once
        writer.kill()  # clocks open, due in a few seconds
        await wait_until(lambda: _kinds_at_least(settings, "breached", 5), 60, "5 breaches by the standby")
        await asyncio.sleep(1.5)
        assert standby.terminate() == 0, standby.log()[-3000:]
    finally:
        for process in (writer, standby, other, refused):
            if process.alive():
                process.kill()
    records = await read_sla(settings)
    per_clock = Counter((r["clock_id"], r["kind"]) for r in records)
    assert sorted(per_clock.values()) == [1] * 10
    assert sorted(r["lead_id"] for r in records if r["kind"] == "breached") == leads
