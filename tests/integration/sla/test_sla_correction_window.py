"""The correction window in the service: a breach with no stop becomes final once the wall clock
passes due + correction_window; the timer commits that (nothing is published), the row is final
so a restart does not load it, and a stop arriving later corrects nothing."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.sla_monitor.domain import load_policy
from tests.integration.sla.sla_harness import (
    SHORT_POLICY,
    contact,
    lifecycle_messages,
    produce,
    read_sla,
    utc_now,
    wait_until,
    website_mql,
)
from tests.integration.sla.test_sla_monitor_live import running_monitor

pytestmark = pytest.mark.stack


async def clock_rows(settings):
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        rows = await conn.fetch("SELECT lead_id, outcome, final, snapshot FROM sla_clocks ORDER BY lead_id")
        return [(r["lead_id"], r["outcome"], r["final"], '"expired": true' in r["snapshot"]) for r in rows]
    finally:
        await conn.close()


async def test_a_breach_past_its_correction_window_is_final_and_not_loaded_again(settings, tmp_path):
    path = tmp_path / f"policy-{uuid.uuid4().hex[:6]}.toml"
    path.write_text('correction_window = "2s"\n' + SHORT_POLICY.format(due="2s"), encoding="utf-8")
    policy = load_policy(path)
    assert policy.source == str(path)
    start = utc_now()
    await produce(settings, lifecycle_messages(website_mql("W-1", start)))

    async with running_monitor(settings, policy) as service:
        await wait_until(lambda: _kinds(settings, "breached"), 30, "the breach on leadflow.sla")
        await wait_until(lambda: not list(service.engine.live_clocks()), 30, "the clock dropped from memory")
        expected = [("W-1", "breached", True, True)]
        await wait_until(lambda: _rows_are(settings, expected), 10, "its row final (committed by the timer)")

        # A contact that happened before due, arriving now: too late to correct.
        await produce(settings, lifecycle_messages([contact("W-1", start + timedelta(seconds=1))]))
        await wait_until(lambda: service.records_applied >= 3, 30, "the contact applied")
        await asyncio.sleep(1.0)

    async with running_monitor(settings, policy) as again:
        assert list(again.engine.live_clocks()) == []  # the start-up load leaves final rows out
    assert sorted(r["kind"] for r in await read_sla(settings)) == ["breached", "started"]
    assert await clock_rows(settings) == [("W-1", "breached", True, True)]


async def _kinds(settings, kind):
    return [r for r in await read_sla(settings) if r["kind"] == kind]


async def _rows_are(settings, expected):
    return await clock_rows(settings) == expected
