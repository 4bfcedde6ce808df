"""`leadflow lead`, `leadflow funnel` and `leadflow rebuild` on a store the real service filled."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest
from click.testing import CliRunner

from services.cli import main as leadflow
from services.common.envelope import Event
from services.lifecycle.service import LifecycleOptions, LifecycleService
from services.lifecycle.synthetic import START, produce_events
from tests.faults.lifecycle_harness import count_stored, wait_for

pytestmark = pytest.mark.stack

H = timedelta(hours=1)
D = timedelta(days=1)


def _e(event_id, lead_id, etype, at, payload=None, source="hubspot"):
    return Event(event_id, lead_id, etype, START + at, source, payload or {})


EVENTS = [
    _e("a1", "A", "lead.created", 0 * H, {"channel": "website", "segment": "smb"}, "website"),
    _e("b1", "B", "lead.created", 0.5 * H, {"channel": "event", "segment": "enterprise"}),
    _e("a2", "A", "lead.marketing_qualified", 1 * H, {"fit": "good"}),
    _e("b2", "B", "lead.information_qualified", 1 * H),
    _e("a3", "A", "lead.assigned", 2 * H, {"owner": "rep-1", "team": "sales-smb"}),
    _e("a4", "A", "lead.accepted", 3 * H, {"owner": "rep-1"}, "salesforce"),
    _e("a4", "A", "lead.accepted", 3 * H, {"owner": "rep-1"}, "salesforce"),   # re-sent: duplicate
    _e("b3", "B", "lead.marketing_qualified", 5 * H, {"fit": "poor"}),
    _e("b4", "B", "lead.information_qualified", 5.5 * H),                      # backward: ignored
    _e("b5", "B", "lead.assigned", 6 * H, {"owner": "rep-2", "team": "sales-ent"}),
    _e("b6", "B", "lead.rejected", 8 * H, {"reason": "no_fit"}, "salesforce"),
    _e("a5", "A", "lead.sales_qualified", 1 * D + 3 * H, {}, "salesforce"),
    _e("c1", "C", "lead.created", 2 * D, {"channel": "referral", "segment": "smb"}),
    _e("a6", "A", "opportunity.created", 2 * D + 3 * H, {"opportunity_id": "o-1", "amount": 5000}, "salesforce"),
    _e("a7", "A", "deal.won", 10 * D + 3 * H, {"revenue": 5000, "currency": "EUR"}, "salesforce"),
]
STORED = len(EVENTS) - 1


async def _fill(settings):
    await produce_events(settings, EVENTS)
    service = LifecycleService(settings, LifecycleOptions(serve_metrics=False))
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await wait_for(lambda: _stored(settings), 60, what="events stored")
    finally:
        service.request_stop()
        await task
        await service.close()


async def _stored(settings) -> bool:
    return await count_stored(settings) >= STORED


async def _cli(settings, *args: str):
    env = {"LEADFLOW_POSTGRES_DSN": settings.postgres_dsn.reveal(), "LEADFLOW_POSTGRES_SCHEMA": settings.postgres_schema}
    # The commands run their own event loop: give them a thread of their own.
    return await asyncio.to_thread(CliRunner().invoke, leadflow, list(args), env=env, catch_exceptions=False)


async def test_lead_shows_history_stages_owners_and_duplicates(settings):
    await _fill(settings)
    result = await _cli(settings, "lead", "A", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["lead"]["stage"] == "customer" and report["lead"]["version"] == 7
    assert [e["type"] for e in report["events"]] == [
        "lead.created", "lead.marketing_qualified", "lead.assigned", "lead.accepted", "lead.sales_qualified",
        "opportunity.created", "deal.won"]
    assert [(s["stage"], s["seconds"]) for s in report["stages"]] == [
        ("new", 3600), ("mql", 7200), ("sal", 24 * 3600), ("sql", 24 * 3600), ("opportunity", 8 * 24 * 3600),
        ("customer", None)]
    assert [(o["owner"], o["team"], o["version"]) for o in report["owners"]] == [("rep-1", "sales-smb", 3)]
    assert [d["event_id"] for d in report["duplicates"]] == ["a4"]

    result = await _cli(settings, "lead", "B", "--json")
    b = json.loads(result.output)
    assert [e["ignored"] for e in b["events"]] == [None, None, None, "backward", None, None]
    assert [s["stage"] for s in b["stages"]] == ["new", "iql", "mql", "rejected"]

    result = await _cli(settings, "lead", "A")   # the tables
    assert result.exit_code == 0
    assert "deal.won" in result.output and "rep-1" in result.output and "8d 0h" in result.output

    result = await _cli(settings, "lead", "nobody")
    assert result.exit_code == 1 and "no lead 'nobody'" in result.output


async def test_funnel_as_of_event_and_recorded_time(settings):
    await _fill(settings)

    async def counts(*args):
        result = await _cli(settings, "funnel", "--json", *args)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        return report, {k: v for k, v in report["stages"].items() if v}

    at = lambda delta: (START + delta).isoformat()  # noqa: E731
    _, now = await counts()
    assert now == {"customer": 1, "rejected": 1, "new": 1}
    _, early = await counts("--as-of", at(4 * H))
    assert early == {"sal": 1, "iql": 1}           # C not created yet; B became an MQL at 5h
    _, later = await counts("--as-of", at(3 * D))
    assert later == {"opportunity": 1, "rejected": 1, "new": 1}
    report, _ = await counts("--by", "channel")
    assert {g: {k: v for k, v in c.items() if v} for g, c in report["groups"].items()} == {
        "website": {"customer": 1}, "event": {"rejected": 1}, "referral": {"new": 1}}
    report, _ = await counts("--by", "team", "--as-of", at(7 * H))
    assert {g: {k: v for k, v in c.items() if v} for g, c in report["groups"].items()} == {
        "sales-smb": {"sal": 1}, "sales-ent": {"mql": 1}}
    # Recorded time: the service stored everything just now, so the start of event time saw nothing.
    _, recorded_then = await counts("--clock", "recorded", "--as-of", at(4 * H))
    assert recorded_then == {}
    _, recorded_now = await counts("--clock", "recorded")
    assert recorded_now == now

    result = await _cli(settings, "funnel", "--by", "segment")
    assert result.exit_code == 0 and "enterprise" in result.output and "total" in result.output
    result = await _cli(settings, "funnel", "--as-of", "yesterday")
    assert result.exit_code == 2 and "RFC 3339" in result.output


async def test_rebuild_reports_and_fixes_projection_differences(settings):
    await _fill(settings)
    result = await _cli(settings, "rebuild", "--json")
    assert result.exit_code == 0, result.output
    clean = json.loads(result.output)
    assert clean["consistent"] and clean["leads"] == 3 and clean["events"] == STORED

    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        await conn.execute("UPDATE leads SET stage = 'mql', owner = 'someone' WHERE lead_id = 'A'")
        await conn.execute("DELETE FROM leads WHERE lead_id = 'C'")
        await conn.execute("INSERT INTO leads SELECT 'ghost', stage, version, owner, team, channel, segment, fit, "
                           "created_at, updated_at, stage_entered_at FROM leads WHERE lead_id = 'B'")
        before_fix = {r["lead_id"]: dict(r) for r in await conn.fetch("SELECT * FROM leads")}

        result = await _cli(settings, "rebuild", "--json")
        assert result.exit_code == 1
        report = json.loads(result.output)
        assert not report["consistent"]
        assert (report["leads_differing"], report["missing_in_projection"], report["orphans_in_projection"]) == (1, 1, 1)
        assert {(d["lead_id"], d["field"]) for d in report["differences"]} == {
            ("A", "stage"), ("A", "owner"), ("C", "(row)"), ("ghost", "(row)")}
        assert {r["lead_id"]: dict(r) for r in await conn.fetch("SELECT * FROM leads")} == before_fix  # report only

        result = await _cli(settings, "rebuild", "--fix")
        assert result.exit_code == 0, result.output
        assert "Fixed 3 projection rows" in result.output
        rows = {r["lead_id"]: r for r in await conn.fetch("SELECT * FROM leads")}
        assert sorted(rows) == ["A", "B", "C"]
        assert (rows["A"]["stage"], rows["A"]["owner"]) == ("customer", "rep-1")
        assert rows["C"]["stage"] == "new"
    finally:
        await conn.close()
    result = await _cli(settings, "rebuild")
    assert result.exit_code == 0 and "matches" in result.output
