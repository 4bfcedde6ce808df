"""The SLA monitor on the real Kafka and Postgres: a clock breaches on the wall clock with no
further event, the breach reaches leadflow.sla and the metrics, and a restart resumes from the
clocks stored in Postgres."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest

from services.sla_monitor.domain import load_policy
from services.sla_monitor.service import SlaMonitor, SlaOptions
from tests.integration.sla.sla_harness import (
    breaches_per_clock,
    contact,
    lifecycle_messages,
    produce,
    read_sla,
    utc_now,
    wait_until,
    website_mql,
    write_policy,
)

pytestmark = pytest.mark.stack

FAST = dict(serve_metrics=False, timer_interval_s=0.25, batch_within_s=0.05, gauge_interval_s=0.5,
            relay_poll_s=0.2, catchup_grace_s=10.0, session_timeout_s=6.0, heartbeat_interval_s=1.0)


@asynccontextmanager
async def running_monitor(settings, policy, now=None, **options):
    service = SlaMonitor(settings, policy, SlaOptions(**{**FAST, **options}), now=now)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        service.request_stop()
        await asyncio.wait_for(task, 30)
        await service.close()
    assert service.fatal is None, service.fatal


def metric(monitor, name: str, **labels) -> float:
    value = monitor.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_breach_fires_with_no_further_event(settings, tmp_path):
    policy = load_policy(write_policy(tmp_path, due="3s"))
    start = utc_now()
    events = website_mql("L-late", start) + website_mql("L-fast", start) + [contact("L-fast", start + timedelta(seconds=1))]
    await produce(settings, lifecycle_messages(events))
    # A transaction the lifecycle aborted is never read (read_committed).
    await produce(settings, lifecycle_messages(website_mql("L-aborted", start)), abort=True)
    # A record that is not a lifecycle record is kept aside, and the rest goes on.
    await produce(settings, [(b"junk", b"not an Avro lifecycle record")])

    async with running_monitor(settings, policy) as service:
        # Both clocks start and L-fast is met at once; L-late waits for the wall clock.
        await wait_until(lambda: service.records_applied >= 6, 30, "the six records applied")
        assert metric(service, "leadflow_sla_clocks_open", sla="speed_to_lead", team="sales") in (0.0, 1.0)
        breached = await wait_until(
            lambda: _breaches(settings), 30, "a speed_to_lead breach on leadflow.sla")
        await wait_until(lambda: metric(service, "leadflow_sla_clocks_open", sla="speed_to_lead", team="sales") == 0,
                         10, "the open-clocks gauge back at 0")
        records = await read_sla(settings)

        assert [r["lead_id"] for r in breached] == ["L-late"]
        breach = breached[0]
        assert breach["sla"] == "speed_to_lead" and breach["outcome"] == "breached"
        assert breach["due_at"] == start + timedelta(seconds=3)
        assert breach["policy_version"] == policy.version
        assert breach["_key"] == b"L-late"
        # Fired by the timer on the wall clock: after the due time, and soon after it.
        assert breach["due_at"] < breach["emitted_at"] < breach["due_at"] + timedelta(seconds=5)

        kinds = sorted((r["lead_id"], r["kind"]) for r in records)
        assert kinds == [("L-fast", "met"), ("L-fast", "started"), ("L-late", "breached"), ("L-late", "started")]
        assert breaches_per_clock(records) == {breach["clock_id"]: 1}
        assert all(r["lead_id"] != "L-aborted" for r in records)

        assert metric(service, "leadflow_sla_breaches_total", sla="speed_to_lead", team="sales", declared="on_time") == 1
        assert metric(service, "leadflow_sla_outcomes_total", sla="speed_to_lead", team="sales", outcome="breached", declared="on_time") == 1
        assert metric(service, "leadflow_sla_outcomes_total", sla="speed_to_lead", team="sales", outcome="met", declared="on_time") == 1
        assert metric(service, "leadflow_sla_time_to_action_seconds_count", sla="speed_to_lead", team="sales") == 1
        assert metric(service, "leadflow_sla_time_to_action_seconds_sum", sla="speed_to_lead", team="sales") == 1.0
        assert metric(service, "leadflow_sla_timer_last_run_timestamp_seconds") >= breach["due_at"].timestamp()
        # Series of every SLA exist at 0 before anything is decided (docs/metrics.md).
        assert service.registry.get_sample_value(
            "leadflow_sla_breaches_total", {"sla": "closed_loop_feedback", "team": "sales", "declared": "late"}) == 0
        assert service.registry.get_sample_value(
            "leadflow_sla_outcomes_total", {"sla": "marketing_weekly_volume", "team": "marketing",
                                            "outcome": "breached", "declared": "on_time"}) == 0
        assert metric(service, "leadflow_consumer_records_total", service="sla_monitor",
                      topic=settings.topics.lifecycle) == 6
        assert metric(service, "leadflow_errors_total", service="sla_monitor", kind="decode") == 1
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        rows = await conn.fetch("SELECT record_key, record_value, error FROM sla_unreadable_records")
        assert [(r["record_key"], r["record_value"]) for r in rows] == [(b"junk", b"not an Avro lifecycle record")]
        assert "single-object" in rows[0]["error"]
    finally:
        await conn.close()


async def _breaches(settings):
    return [r for r in await read_sla(settings) if r["kind"] == "breached"]


async def test_restart_resumes_open_clocks_from_postgres(settings, tmp_path):
    """Clocks started before a clean stop breach after the restart, once; the input is not
    applied twice (offsets and state commit together)."""
    policy = load_policy(write_policy(tmp_path, due="4s"))
    start = utc_now()
    await produce(settings, lifecycle_messages(website_mql("R-1", start) + website_mql("R-2", start)))

    async with running_monitor(settings, policy) as first:
        await wait_until(lambda: first.records_applied >= 4, 30, "four records applied")
        assert sum(1 for c in first.engine.live_clocks() if c.outcome is None) == 2
    # Stopped before the clocks are due: nothing decided yet.
    assert [r["kind"] for r in await read_sla(settings)] == ["started", "started"]

    await asyncio.sleep(max(0.0, (start + timedelta(seconds=4) - utc_now()).total_seconds()) + 0.5)
    async with running_monitor(settings, policy) as second:
        await wait_until(lambda: _count_kind(settings, "breached", 2), 30, "two breaches after the restart")
        assert second.records_applied == 0  # the stored offsets were the end of the input
        await asyncio.sleep(1.0)  # more timer ticks change nothing
        records = await read_sla(settings)
    assert sorted((r["lead_id"], r["kind"]) for r in records) == [
        ("R-1", "breached"), ("R-1", "started"), ("R-2", "breached"), ("R-2", "started")]

    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        rows = await conn.fetch("SELECT lead_id, outcome, final FROM sla_clocks ORDER BY lead_id")
        assert [(r["lead_id"], r["outcome"], r["final"]) for r in rows] == [
            ("R-1", "breached", False), ("R-2", "breached", False)]  # a late stop may still correct them
        assert await conn.fetchval("SELECT count(*) FROM sla_emissions") == 4
    finally:
        await conn.close()


async def _count_kind(settings, kind: str, n: int) -> bool:
    return sum(1 for r in await read_sla(settings) if r["kind"] == kind) >= n


async def test_volume_windows_close_on_the_wall_clock(settings, tmp_path):
    """Assignments in a past week and month: once the wall clock is past their end the timer
    judges the windows; window records are keyed by SLA (and owner) and carry the counts."""
    from services.common.envelope import Event

    policy = load_policy(write_policy(tmp_path, due="1h"))
    now = utc_now()
    first = now - timedelta(days=100)
    at = now - timedelta(days=50)
    # Windows are judged from the first event the monitor sees on: let that be V0's, alone.
    await produce(settings, lifecycle_messages(
        [Event("V0-c", "V0", "lead.created", first, "hubspot", {"channel": "event", "segment": "smb"})]))
    events = []
    # The monitor's wall clock stands still at `first` until every record is in, then jumps to now.
    wall = {"now": first}
    for i, (owner, fit) in enumerate((("rep-1", "good"), ("rep-1", "poor"), ("rep-2", "good"))):
        lead = f"V{i + 1}"
        events += [
            Event(f"{lead}-c", lead, "lead.created", at, "hubspot", {"channel": "event", "segment": "smb"}),
            Event(f"{lead}-s", lead, "lead.scored", at, "hubspot", {"score": 50, "fit": fit}),
            Event(f"{lead}-a", lead, "lead.assigned", at + timedelta(minutes=i), "salesforce",
                  {"owner": owner, "team": "sales-emea"}),
        ]

    async with running_monitor(settings, policy, now=lambda: wall["now"]) as service:
        await wait_until(lambda: service.records_applied == 1, 30, "the first event applied")
        await produce(settings, lifecycle_messages(events))
        await wait_until(lambda: service.records_applied == 10, 30, "every record applied")
        assert all(r["kind"] == "started" for r in await read_sla(settings))  # nothing judged yet
        wall["now"] = now
        weekly = await wait_until(lambda: _windows(settings, "marketing_weekly_volume", count=3), 30,
                                  "the weekly window with the three assignments judged")
        monthly = await wait_until(lambda: _windows(settings, "rep_monthly_volume"), 30, "the monthly windows")
        assert weekly["_key"] == b"marketing_weekly_volume" and weekly["scope"] == {}
        assert weekly["outcome"] == "breached" and weekly["target"] == 50
        assert abs(weekly["fit_share"] - 2 / 3) < 1e-9
        assert weekly["window_start"] <= at < weekly["window_end"] <= now
        by_owner = {r["scope"]["owner"]: r for r in monthly}
        assert set(by_owner) == {"rep-1", "rep-2"}
        assert by_owner["rep-1"]["_key"] == b"rep_monthly_volume/rep-1"
        assert (by_owner["rep-1"]["count"], by_owner["rep-2"]["count"]) == (2, 1)
        assert all(r["outcome"] == "breached" and r["target"] == 150 for r in monthly)
        # Each of the ~14 weeks since the first event is judged once (empty ones too).
        records = await read_sla(settings)
        weeks = [r for r in records if r["sla"] == "marketing_weekly_volume"]
        assert len({r["clock_id"] for r in weeks}) == len(weeks) >= 13
        assert all(first <= r["window_start"] and r["window_end"] <= now for r in weeks)
        await wait_until(lambda: metric(service, "leadflow_sla_volume_target", sla="marketing_weekly_volume",
                                        scope="all") == 50, 10, "the weekly target gauge")
        assert metric(service, "leadflow_sla_volume_count", sla="marketing_weekly_volume", scope="all") == 0
        # Judged weeks and months after their end: history, counted as declared late (no page).
        assert metric(service, "leadflow_sla_breaches_total", sla="rep_monthly_volume", team="marketing", declared="late") == 2
        assert metric(service, "leadflow_sla_outcomes_total", sla="marketing_weekly_volume", team="marketing",
                      outcome="breached", declared="late") >= len(weeks) - 1  # the newest may have ended < 1h ago
        assert sum(metric(service, "leadflow_sla_outcomes_total", sla="marketing_weekly_volume", team="marketing",
                          outcome="breached", declared=declared) for declared in ("late", "on_time")) == len(weeks)
        # The handoff clocks of the assignments belong to the lead's team.
        assert metric(service, "leadflow_sla_clocks_open", sla="contact_attempts", team="sales-emea") == 3
        assert metric(service, "leadflow_sla_breaches_total", sla="sales_acceptance", team="sales-emea", declared="late") == 3


async def _windows(settings, sla: str, count: int | None = None):
    found = [r for r in await read_sla(settings) if r["sla"] == sla and r["kind"] == "window_closed"]
    if count is None:
        return found
    return next((r for r in found if r["count"] == count), None)


async def test_one_writer_a_second_instance_waits_and_a_stale_one_is_fenced(settings, tmp_path):
    from services.common.postgres import connect
    from services.sla_monitor import store
    from services.sla_monitor.service import FatalError, StandbyRefused

    policy = load_policy(write_policy(tmp_path, due="1h"))
    first = SlaMonitor(settings, policy, SlaOptions(**FAST))
    await first.start()
    task = asyncio.create_task(first.run())
    try:
        # The writer lock is held: a second instance told not to wait refuses to start.
        second = SlaMonitor(settings, policy, SlaOptions(**{**FAST, "lock_wait": False}))
        with pytest.raises(StandbyRefused):
            await second.start()
        await second.close()

        # A newer claim of the state (what a standby does when it gets the lock) fences the
        # first instance: its next commit is refused, nothing of it is written, and it stops.
        conn = await connect(settings)
        try:
            await store.claim(conn, "a-newer-instance")
            await produce(settings, lifecycle_messages(website_mql("F-1", utc_now())))
            code = await asyncio.wait_for(task, 30)
            assert code == 1
            assert isinstance(first.fatal, FatalError) and "claimed by another instance" in str(first.fatal)
            assert await conn.fetchval("SELECT count(*) FROM sla_clocks") == 0
            assert await conn.fetchval("SELECT count(*) FROM sla_input_offsets") == 0
        finally:
            await conn.close()
    finally:
        first.request_stop()
        await first.close()


async def test_standby_takes_over_when_the_writer_goes(settings, tmp_path):
    policy = load_policy(write_policy(tmp_path, due="1h"))
    start = utc_now()
    await produce(settings, lifecycle_messages(website_mql("S-1", start)))
    async with running_monitor(settings, policy) as first:
        await wait_until(lambda: first.records_applied == 2, 30, "the writer applied S-1")
        standby = SlaMonitor(settings, policy, SlaOptions(**FAST))
        starting = asyncio.create_task(standby.start())
        await asyncio.sleep(1.0)
        assert not starting.done()  # waiting for the writer lock
    try:
        await asyncio.wait_for(starting, 30)
        assert standby.epoch == first.epoch + 1
        assert [c.lead_id for c in standby.engine.live_clocks()] == ["S-1"]  # restored, not re-read
        await produce(settings, lifecycle_messages([contact("S-1", start + timedelta(minutes=5))]))
        await wait_until(lambda: standby.records_applied == 1, 30, "the standby applied the stop")
        await wait_until(lambda: _count_kind(settings, "met", 1), 30, "the met record on leadflow.sla")
    finally:
        standby.request_stop()
        await standby.close()
    assert standby.fatal is None
