"""End to end on the real stack: ingest, lifecycle and SLA monitor as processes, scraped by a real
Prometheus with the rules in deploy/, alerting through a real Alertmanager to a webhook receiver
this test runs.

- A website lead whose speed-to-lead clock breaches makes the page alert fire in Prometheus and
  Alertmanager deliver it to the on-call receiver within a minute, labelled with SLA and team.
- After a short stream of events, every panel query of the three Grafana dashboards runs
  against that Prometheus and returns data.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web

from deploy.grafana.generate import panel_queries, resolve_expr
from services.bench.traffic import generate_events
from services.common.config import StackPorts, settings_env
from services.common.kafka import ensure_topics, lead_key, make_producer
from services.stack.monitoring_nodes import AlertmanagerNode, PrometheusNode
from services.stack.process import free_port
from services.stack.service_processes import ServiceProcesses
from tests.conftest import make_test_settings
from tests.integration.sla.sla_harness import SHORT_POLICY

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TEAM = "sales-emea"
BREACH_DUE = "20s"

POLICY = SHORT_POLICY.format(due=BREACH_DUE)  # speed_to_lead due soon, on a 24/7 calendar


class WebhookReceiver:
    """What Alertmanager delivers, kept with the time it arrived."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[float, str, dict]] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.deliveries.append((time.time(), request.match_info["receiver"], await request.json()))
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{receiver}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def alerts(self, receiver: str) -> list[tuple[float, dict]]:
        return [(at, alert) for at, name, body in self.deliveries if name == receiver for alert in body["alerts"]]


@pytest.fixture(scope="module")
async def pipeline(stack, tmp_path_factory):
    home = stack.home / f"e2e-{uuid.uuid4().hex[:6]}"
    policy = tmp_path_factory.mktemp("policy") / "policy.toml"
    policy.write_text(POLICY)
    ports = StackPorts(prometheus=free_port(), alertmanager=free_port())
    settings = make_test_settings(stack).with_changes(
        home=home, ports=ports, ingest_port=free_port(), lifecycle_metrics_port=free_port(),
        sla_metrics_port=free_port(), sla_policy_file=str(policy),
    )
    await ensure_topics(settings)
    receiver = WebhookReceiver()
    await receiver.start()
    alertmanager = AlertmanagerNode(home / "alertmanager", ports.alertmanager,
                                    oncall_url=f"http://127.0.0.1:{receiver.port}/oncall",
                                    ticket_url=f"http://127.0.0.1:{receiver.port}/tickets")
    prometheus = PrometheusNode(home / "prometheus", ports.prometheus, ports, service_ports={
        8080: settings.ingest_port, 9101: settings.lifecycle_metrics_port, 9102: settings.sla_metrics_port})
    services = ServiceProcesses(settings)
    try:
        alertmanager.start()
        prometheus.start()
        services.start(env=settings_env(settings), log=lambda _line: None)
        # History from last month comes first: the monitor judges a window only if it starts
        # after the first event it saw, so then this month's per-rep windows are counted too.
        await _post(settings, [{"event_id": "history-1", "lead_id": "history-1", "type": "lead.created",
                                "occurred_at": _stamp(_last_month()), "source": "website",
                                "payload": {"channel": "website", "segment": "smb"}}])
        await asyncio.sleep(5)
        yield settings, prometheus, receiver
    finally:
        services.stop(log=lambda _line: None)
        prometheus.stop()
        alertmanager.stop()
        await receiver.stop()


async def _post(settings, events: list[dict]) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{settings.ingest_port}/v1/events", json=events) as resp:
            body = await resp.json()
            assert resp.status == 202, body
            return body


async def _query(prometheus: PrometheusNode, expr: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{prometheus.url}/api/v1/query", params={"query": expr}) as resp:
            return await resp.json()


def _last_month() -> datetime:
    first_of_month = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first_of_month - timedelta(days=3)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_speed_to_lead_breach_pages_on_call_within_a_minute(pipeline):
    settings, prometheus, receiver = pipeline
    lead = f"e2e-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    envelope = lambda n, etype, payload: {"event_id": f"{lead}-{n}", "lead_id": lead, "type": etype,
                                          "occurred_at": _stamp(now), "source": "website", "payload": payload}
    await _post(settings, [
        envelope(1, "lead.created", {"channel": "website", "segment": "smb"}),
        envelope(2, "lead.assigned", {"owner": "rep-01", "team": TEAM}),
        envelope(3, "lead.marketing_qualified", {"fit": "good"}),
    ])
    due = now + timedelta(seconds=20)
    deadline = due.timestamp() + 60
    page = None
    while time.time() < deadline and page is None:
        for at, alert in receiver.alerts("oncall"):
            if alert["labels"].get("alertname") == "LeadflowSpeedToLeadBreach" and alert["status"] == "firing":
                page = (at, alert)
        await asyncio.sleep(1)
    assert page is not None, f"no page within a minute of the breach; deliveries: {json.dumps(receiver.deliveries)[:2000]}"
    delivered_at, alert = page
    assert delivered_at - due.timestamp() < 60
    assert alert["labels"]["sla"] == "speed_to_lead"
    assert alert["labels"]["team"] == TEAM
    assert alert["labels"]["severity"] == "page"
    assert "speed_to_lead" in alert["annotations"]["summary"] and TEAM in alert["annotations"]["summary"]
    firing = await _query(prometheus, 'ALERTS{alertname="LeadflowSpeedToLeadBreach", alertstate="firing"}')
    assert firing["data"]["result"], firing


async def _send_dead_letter(settings) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.inbound, b'{"event_id": "broken"', key=lead_key("dlq-probe"))
    finally:
        await producer.stop()


async def test_every_dashboard_panel_query_returns_data(pipeline):
    settings, prometheus, _receiver = pipeline
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    events = list(generate_events(1500, seed=17, start=start, concurrent_leads=60,
                                  lead_prefix=f"p{uuid.uuid4().hex[:4]}-", mean_gap_seconds=4.0))
    # Spread over several scrapes (5 s apart), as live traffic is: a counter's first sample is
    # its baseline, so only what happens between scrapes shows up in increase() and rate().
    for i in range(0, len(events), 250):
        await _post(settings, events[i:i + 250])
        await asyncio.sleep(6)
    refused = await _refused_request(settings)
    assert refused["refused"] == 1
    await _send_dead_letter(settings)

    queries = panel_queries()
    assert len(queries) > 30
    empty: list[str] = []
    # Counters need two scrapes to show an increase, recording rules a minute for their first
    # evaluation: keep asking until every query answers or 150 s have passed.
    deadline = time.monotonic() + 150
    while True:
        empty = []
        for q in queries:
            expr = resolve_expr(q.expr, range_="1h", rate_interval="1m")
            answer = await _query(prometheus, expr)
            assert answer["status"] == "success", f"{q.dashboard} / {q.panel}: {expr}: {answer}"
            if not answer["data"]["result"]:
                empty.append(f"{q.dashboard} / {q.panel} [{q.ref_id}]: {expr}")
        if not empty or time.monotonic() > deadline:
            break
        await asyncio.sleep(10)
    assert empty == [], "panel queries that returned no data:\n" + "\n".join(empty)


async def _refused_request(settings) -> dict:
    bad = {"event_id": "bad-1", "lead_id": "L-bad", "type": "lead.scored", "occurred_at": "2026-11-02T08:00:00Z",
           "source": "website", "payload": {"score": "high"}}
    ok = {**bad, "event_id": f"ok-{uuid.uuid4().hex[:6]}", "payload": {"score": 10}}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{settings.ingest_port}/v1/events", json=[bad, ok]) as resp:
            return await resp.json()
