"""The stack as an attacker or an auditor sees it, on the real services (ingest, lifecycle, SLA
monitor as processes, with API keys and request signatures on) and the stack's servers (Kafka,
PostgreSQL, Prometheus, Alertmanager):

- every socket any of them listens on is bound to the loopback address;
- the services log in to PostgreSQL as their own roles, never as the admin login;
- after a run with personal data (emails, companies), API keys and signatures, including refused
  requests, bad credentials, unreadable records on the internal topics and dead letters, no log
  file the run wrote and no metric label holds any of those values.
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest

from services.common.config import Secret, StackPorts, settings_env
from services.common.db_roles import LIFECYCLE, SLA
from services.common.kafka import ensure_topics, lead_key, make_producer
from services.ingest.auth import hash_key, new_key, sign
from services.stack.monitoring_nodes import AlertmanagerNode, PrometheusNode
from services.stack.process import free_port, read_pid
from services.stack.service_processes import SERVICES, ServiceProcesses
from tests.conftest import make_test_settings

pytestmark = [pytest.mark.stack]

LEADS = 12
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
# Files that hold data, not logs: Kafka's segments, PostgreSQL's and Prometheus's data, Faust's state.
DATA_DIRS = {"data", "faust", "wal", "chunks_head"}
SEGMENT = re.compile(r"^\d{20}\.(log|index|timeindex|snapshot)$")


@dataclass
class Run:
    settings: object
    home: Path
    secrets: list[str]                              # every value that must appear in no log / label
    listening: dict[str, list[tuple[str, int]]]     # component -> (address, port) it listens on
    pg_logins: dict[str, set[str]]                  # service -> the PostgreSQL users its connections use
    metrics: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    scrape_health: dict[str, str] = field(default_factory=dict)   # Prometheus job -> its target's health


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tree(pid: int | None) -> set[int]:
    if pid is None or not psutil.pid_exists(pid):
        return set()
    proc = psutil.Process(pid)
    return {pid} | {child.pid for child in proc.children(recursive=True)}


def _postmaster_pid(stack) -> int | None:
    if stack.postgres is None:
        return None
    pid_file = (stack.postgres.home / "data").resolve() / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """Every TCP socket in LISTEN and every bound UDP socket of these processes."""
    found = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.pid not in pids or not conn.laddr:
            continue
        if conn.status == psutil.CONN_LISTEN or (conn.type == socket.SOCK_DGRAM and not conn.raddr):
            found.append((conn.laddr.ip, conn.laddr.port))
    return found


async def _pg_logins(settings, pids: set[int], pg_port: int) -> set[str]:
    """The PostgreSQL users of the connections these processes hold (matched by client port)."""
    ports = [c.laddr.port for c in psutil.net_connections(kind="tcp")
             if c.pid in pids and c.raddr and c.raddr.port == pg_port]
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        rows = await conn.fetch("SELECT usename FROM pg_stat_activity WHERE client_port = ANY($1::int[])", ports)
    finally:
        await conn.close()
    return {r["usename"] for r in rows}


class Client:
    """POST /v1/events as an upstream system: a key, and a signature over the body."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str, secret: str) -> None:
        self.session, self.base, self.key, self.secret = session, base, key, secret

    async def post(self, body: bytes, key: str | None = None, signature: str | None = None) -> int:
        now = int(time.time())
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key or self.key}",
                   "X-Leadflow-Timestamp": str(now),
                   "X-Leadflow-Signature": signature or sign(self.secret, now, body)}
        async with self.session.post(f"{self.base}/v1/events", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status


@pytest.fixture(scope="module")
async def run(stack, tmp_path_factory) -> Run:
    tag = uuid.uuid4().hex[:8]
    home = stack.home / f"security-{tag}"
    key, scraper_key, wrong_key, hmac_secret = new_key(), new_key(), new_key(), f"hmac-{uuid.uuid4().hex}"
    ports = StackPorts(prometheus=free_port(), alertmanager=free_port())
    settings = make_test_settings(stack).with_changes(
        home=home, ports=ports, ingest_port=free_port(), lifecycle_metrics_port=free_port(),
        sla_metrics_port=free_port(),
        ingest_api_keys=Secret(f"website:{hash_key(key)},scraper:{hash_key(scraper_key)}"),
        ingest_hmac_secret=Secret(hmac_secret),
    )
    await ensure_topics(settings)
    prometheus = PrometheusNode(home / "prometheus", ports.prometheus, ports, service_ports={
        8080: settings.ingest_port, 9101: settings.lifecycle_metrics_port, 9102: settings.sla_metrics_port},
        ingest_key=Secret(scraper_key))
    alertmanager = AlertmanagerNode(home / "alertmanager", ports.alertmanager)
    services = ServiceProcesses(settings)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    emails = [f"jane.doe.{tag}.{i}@example.com" for i in range(LEADS)]
    companies = [f"Acme {tag} Holding {i} GmbH" for i in range(LEADS)]
    secrets = [key, scraper_key, wrong_key, hmac_secret, *emails, *companies]
    try:
        alertmanager.start()
        prometheus.start()
        services.start(env=settings_env(settings), log=lambda _line: None)
        base = f"http://127.0.0.1:{settings.ingest_port}"
        statuses: list[int] = []
        async with aiohttp.ClientSession() as session:
            client = Client(session, base, key, hmac_secret)
            for i in range(LEADS):
                lead = f"sec-{tag}-{i}"
                events = [
                    {"event_id": f"{lead}-c", "lead_id": lead, "type": "lead.created", "occurred_at": _stamp(now),
                     "source": "website", "payload": {"channel": "website", "segment": "smb", "email": emails[i],
                                                      "company": companies[i], "country": "DE"}},
                    {"event_id": f"{lead}-a", "lead_id": lead, "type": "lead.assigned", "occurred_at": _stamp(now),
                     "source": "website", "payload": {"owner": "rep-1", "team": "sales-emea"}},
                    {"event_id": f"{lead}-m", "lead_id": lead, "type": "lead.marketing_qualified",
                     "occurred_at": _stamp(now), "source": "website", "payload": {"fit": "good"}},
                ]
                body = json.dumps(events).encode()
                signature = sign(hmac_secret, int(time.time()), body)
                secrets.append(signature.removeprefix("sha256="))
                statuses.append(await client.post(body, signature=signature))
                # Refused: a wrong key, a wrong signature, broken JSON and invalid events, all
                # carrying the personal data.
                statuses.append(await client.post(body, key=wrong_key))
                bad_signature = "sha256=" + uuid.uuid4().hex + uuid.uuid4().hex
                secrets.append(bad_signature.removeprefix("sha256="))
                statuses.append(await client.post(body, signature=bad_signature))
                statuses.append(await client.post(body[:-7]))
                invalid = [{**events[0], "event_id": f"{lead}-x", "payload": {**events[0]["payload"], "segment": 7}},
                           {**events[0], "event_id": f"{lead}-y", "source": "hubspot"},
                           {**events[0], "event_id": f"{lead}-z", "occurred_at": f"not a time {emails[i]}"}]
                statuses.append(await client.post(json.dumps(invalid).encode()))
                # A duplicate with other personal data: refused by the lifecycle, kept in its table.
                dup = [{**events[0], "payload": {**events[0]["payload"], "email": "dup." + emails[i]}}]
                statuses.append(await client.post(json.dumps(dup).encode()))
                secrets.append("dup." + emails[i])
        await _unreadable_records(settings, tag, emails, companies)
        await _wait_stored(settings, tag)
        metrics = {}
        async with aiohttp.ClientSession() as session:
            for name, port, headers in (
                    ("ingest", settings.ingest_port, {"Authorization": f"Bearer {scraper_key}"}),
                    ("lifecycle", settings.lifecycle_metrics_port, {}), ("sla_monitor", settings.sla_metrics_port, {})):
                async with session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as resp:
                    assert resp.status == 200, name
                    metrics[name] = await resp.text()
        scrape_health = await _scrape_health(prometheus)
        service_pids = {spec.name: _tree(read_pid(services.dir / f"{spec.name}.pid")) for spec in SERVICES}
        components = {
            **service_pids,
            "kafka": _tree(read_pid(stack.kafka.pid_file)) if stack.kafka else set(),
            "postgres": _tree(_postmaster_pid(stack)),
            "prometheus": _tree(read_pid(prometheus.pid_file)),
            "alertmanager": _tree(read_pid(alertmanager.pid_file)),
        }
        listening = {name: _listening(pids) for name, pids in components.items()}
        pg_port = int(settings.postgres_dsn.reveal().rsplit(":", 1)[1].split("/")[0])
        pg_logins = {name: await _pg_logins(settings, pids, pg_port) for name, pids in service_pids.items()}
        yield Run(settings, home, secrets, listening, pg_logins, metrics, statuses, scrape_health)
    finally:
        services.stop(log=lambda _line: None)
        prometheus.stop()
        alertmanager.stop()


async def _scrape_health(prometheus: PrometheusNode, timeout: float = 30) -> dict[str, str]:
    """Each scrape job's target health once every one has been scraped (or the timeout)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{prometheus.url}/api/v1/targets") as resp:
                targets = (await resp.json())["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            if (health and all(h != "unknown" for h in health.values())) or time.monotonic() > deadline:
                return health
            await asyncio.sleep(1)


async def _unreadable_records(settings, tag: str, emails: list[str], companies: list[str]) -> None:
    """Garbage carrying personal data on every topic a service reads: the inbound topic (to the
    dead-letter topic), leadflow.events (not Avro) and leadflow.lifecycle (not Avro)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for topic in (settings.topics.inbound, settings.topics.events, settings.topics.lifecycle):
            value = f'{{"event_id": "broken-{tag}", "email": "{emails[0]}", "company": "{companies[0]}"'.encode()
            await producer.send_and_wait(topic, value, key=lead_key(f"sec-{tag}-0"))
        valid_inbound = {"event_id": f"sec-{tag}-in", "lead_id": f"sec-{tag}-in", "type": "lead.created",
                         "occurred_at": "2026-11-02T09:00:00Z", "source": "website",
                         "payload": {"email": emails[1], "company": companies[1], "segment": ["not", "text"]}}
        await producer.send_and_wait(settings.topics.inbound, json.dumps(valid_inbound).encode(),
                                     key=lead_key(f"sec-{tag}-in"))
    finally:
        await producer.stop()


async def _wait_stored(settings, tag: str, timeout: float = 90) -> None:
    """Until the lifecycle stored every accepted event and the SLA monitor started the clocks."""
    conn = await asyncpg.connect(settings.postgres_dsn.reveal(),
                                 server_settings={"search_path": settings.postgres_schema})
    try:
        deadline = time.monotonic() + timeout
        while True:
            events = clocks = 0
            if await conn.fetchval("SELECT to_regclass('lead_events')") is not None:
                events = await conn.fetchval("SELECT count(*) FROM lead_events WHERE lead_id LIKE $1", f"sec-{tag}-%")
            if await conn.fetchval("SELECT to_regclass('sla_clocks')") is not None:
                clocks = await conn.fetchval("SELECT count(*) FROM sla_clocks WHERE lead_id LIKE $1", f"sec-{tag}-%")
            if events >= 3 * LEADS and clocks >= LEADS:
                return
            assert time.monotonic() < deadline, f"stored {events} events, {clocks} clocks"
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def test_every_listening_socket_is_on_the_loopback(run: Run, stack):
    expected_ports = {
        "ingest": run.settings.ingest_port, "lifecycle": run.settings.lifecycle_metrics_port,
        "sla_monitor": run.settings.sla_metrics_port,
        "prometheus": run.settings.ports.prometheus, "alertmanager": run.settings.ports.alertmanager,
    }
    if stack.postgres is not None:
        expected_ports["postgres"] = stack.postgres.port
    if stack.kafka is not None:
        expected_ports["kafka"] = stack.kafka.port
    for name, port in expected_ports.items():
        assert port in {p for _ip, p in run.listening[name]}, f"{name} is not listening on {port}: {run.listening[name]}"
    exposed = {name: [s for s in sockets if s[0] not in LOOPBACK] for name, sockets in run.listening.items()}
    assert all(not s for s in exposed.values()), f"listening beyond the loopback: {exposed}"


def test_the_services_log_in_to_postgres_as_their_own_roles(run: Run):
    assert run.pg_logins["lifecycle"] == {LIFECYCLE.name}
    assert run.pg_logins["sla_monitor"] == {SLA.name}
    assert run.pg_logins["ingest"] == set()      # ingest does not use PostgreSQL


def test_prometheus_scrapes_ingest_with_its_key(run: Run):
    """Outside dev mode ingest's /metrics needs a key: the stack's Prometheus presents the
    scraper's (LEADFLOW_PROMETHEUS_INGEST_KEY) from a file of its own, readable by its user only."""
    assert run.scrape_health["leadflow-ingest"] == "up", run.scrape_health
    assert run.scrape_health["leadflow-lifecycle"] == "up" and run.scrape_health["leadflow-sla-monitor"] == "up"
    key_file = run.home / "prometheus" / "ingest-metrics.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text() not in (run.home / "prometheus" / "prometheus.yml").read_text()


def test_the_run_exercised_accepted_and_refused_requests(run: Run):
    assert run.statuses.count(202) == 2 * LEADS     # the events, and the duplicates (202, refused later)
    assert run.statuses.count(401) == 2 * LEADS     # wrong key, wrong signature
    assert run.statuses.count(400) == LEADS         # broken JSON
    assert run.statuses.count(422) == LEADS         # no valid event


def _log_files(roots: list[Path]) -> list[Path]:
    files = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or SEGMENT.match(path.name) or path.suffix == ".key":
                continue    # data, or a key file (mode 0600, where a key belongs)
            if DATA_DIRS & set(path.relative_to(root).parts[:-1]):
                continue
            files.append(path)
    return files


def test_no_log_holds_personal_data_keys_or_signatures(run: Run, stack):
    roots = [stack.home]
    if stack.postgres is not None:
        roots.append(stack.postgres.log_file.parent)
    files = _log_files(roots)
    service_logs = [run.home / "services" / f"{spec.name}.log" for spec in SERVICES]
    assert all(log in files for log in service_logs), "the services' logs are scanned"
    assert any(path.name == "postgres.log" for path in files) or stack.postgres is None
    assert sum(path.stat().st_size for path in service_logs) > 0, "the services wrote logs"
    leaks = []
    needles = [s.encode() for s in run.secrets]
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            if needle in content:
                line = content[max(0, content.index(needle) - 200):content.index(needle) + 80]
                leaks.append(f"{path}: {line!r}")
    assert leaks == [], "secrets or personal data in logs:\n" + "\n".join(leaks[:20])


def test_no_metric_label_holds_personal_data_or_secrets(run: Run):
    assert set(run.metrics) == {"ingest", "lifecycle", "sla_monitor"}
    assert "leadflow_ingest_events_refused_total" in run.metrics["ingest"]
    for name, text in run.metrics.items():
        for secret in run.secrets:
            assert secret not in text, f"{name} /metrics shows a secret or personal value"
