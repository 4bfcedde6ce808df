"""`leadflow console` on the real PostgreSQL over the known history: every page answers, the
report JSON is the CLI's, bad input is a 400 with the reason (never a 500), auth is ingest's
(hashed keys, Bearer or Basic; open only in the logged dev mode), personal fields show on the
lead page and in no log line."""
from __future__ import annotations

import base64
import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.common.api_keys import hash_key
from services.common.config import Secret
from services.console.app import Console
from tests.integration.report.history import store_history
from tests.integration.report.known_history import EVENTS, NOW, POLICY

pytestmark = pytest.mark.stack


@pytest.fixture
async def stored(settings):
    await store_history(settings, EVENTS, POLICY, NOW)
    return settings


async def _client(settings) -> TestClient:
    client = TestClient(TestServer(Console(settings, POLICY, clock=lambda: NOW).app()))
    await client.start_server()
    return client


async def test_pages_in_dev_mode(stored, caplog):
    caplog.set_level(logging.INFO)
    client = await _client(stored)
    try:
        assert any("dev mode" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        response = await client.get("/", allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == "/report?week=2026-W47"
        page = await (await client.get("/report?week=2026-W46")).text()
        assert "S1 Handoffs" in page and "71.4%" in page and 'src="/static/plotly.min.js"' in page
        assert 'type="week"' in page and 'type="month"' in page  # the picker
        month = await client.get("/report", params={"month": "2026-11", "team": "east"})
        assert month.status == 200 and "team east" in await month.text()
        data = json.loads(await (await client.get("/report.json?week=2026-W46")).text())
        assert data["acceptance"]["attainment"]["total"]["attainment"] == 0.8
        assert data["breaches"]["clocks"]["total"] == 4
        lead = await (await client.get("/lead", params={"id": "L5"})).text()
        assert "l5@example.com" in lead and "Company L5" in lead       # personal fields: here only
        assert "sales_acceptance" in lead and "2026-11-13T16:00:00Z" in lead and "yes" in lead  # corrected
        assert "Time in each stage" in lead and "mql" in lead
        risk = await client.get("/at-risk")
        text = await risk.text()
        assert risk.status == 200 and 'http-equiv="refresh"' in text
        # Open clocks with a due time at Mon 11-16 12:00: L6's acceptance (due 16:00, 4h left).
        assert "L6" in text and "4h 00m" in text and "cy" in text
        assert (await client.get("/at-risk", params={"team": "west", "owner": "cy"})).status == 200
        js = await client.get("/static/plotly.min.js")
        assert js.status == 200 and len(await js.read()) > 1_000_000
        assert (await client.get("/lead", params={"id": "nobody"})).status == 404
    finally:
        await client.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "@example.com" not in logged and "Company L" not in logged


@pytest.mark.parametrize("url, reason", [
    ("/report?week=2026-46", "week '2026-46' is not an ISO week like 2026-W46"),
    ("/report?week=2026-W60", "week '2026-W60' does not exist"),
    ("/report?month=2026-00", "month '2026-00' does not exist"),
    ("/report?month=2026-12", "month 2026-12 has not started yet"),
    ("/report?week=2026-W46&month=2026-11", "give exactly one of"),
    ("/report?week=2026-W46&team=north", "team 'north' is unknown (teams with leads: east, west)"),
    ("/report?week=2026-W46&week=2026-W45", "week given 2 times"),
    ("/report?weak=2026-W46", "unknown parameter 'weak'"),
    ("/report.json?month=" + "9" * 300, "month is longer than 200 characters"),
    ("/lead", "give the lead's id"),
    ("/at-risk?team=north", "team 'north' is unknown"),
])
async def test_bad_input_is_a_400_with_the_reason(stored, url, reason):
    client = await _client(stored)
    try:
        response = await client.get(url)
        body = await response.text()
        assert response.status == 400, body
        assert reason in body and "Traceback" not in body
    finally:
        await client.close()


async def test_keys_are_checked_as_ingest_does(stored, caplog):
    settings = stored.with_changes(console_api_keys=Secret(f"revops:{hash_key('s3cret-key')},cfo:{hash_key('other')}"))
    caplog.set_level(logging.INFO)
    client = await _client(settings)
    try:
        assert not any("dev mode" in r.getMessage() for r in caplog.records)
        nothing = await client.get("/at-risk")
        assert nothing.status == 401 and nothing.headers["WWW-Authenticate"].startswith("Basic")
        assert (await client.get("/at-risk", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get("/at-risk", headers={"Authorization": "Bearer s3cret-key"})).status == 200
        basic = base64.b64encode(b"anyone:other").decode()
        assert (await client.get("/report?week=2026-W46", headers={"Authorization": f"Basic {basic}"})).status == 200
        bad = base64.b64encode(b"anyone:s3cret-ke").decode()
        assert (await client.get("/at-risk", headers={"Authorization": f"Basic {bad}"})).status == 401
        assert (await client.get("/static/plotly.min.js")).status == 401
    finally:
        await client.close()
