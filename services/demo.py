"""`leadflow demo`: the local stack, the three services, a few hundred leads of realistic traffic
through the HTTP API, and what came out: the funnel from the event store and the SLA outcomes
from the monitor's metrics. Every step uses the public interfaces (HTTP, Postgres, /metrics)."""
from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import click
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from services.bench.traffic import generate_events
from services.common.config import Settings, load_settings
from services.common.db_roles import READER
from services.common.postgres import connect
from services.lifecycle.domain import STAGES
from services.stack.local_stack import LocalStack
from services.stack.process import StackError
from services.stack.service_processes import ServiceProcesses


async def _post_all(url: str, events: list[dict], batch: int = 500) -> tuple[int, int]:
    accepted = refused = 0
    async with aiohttp.ClientSession() as session:
        for i in range(0, len(events), batch):
            async with session.post(url, json=events[i:i + batch]) as resp:
                body = await resp.json()
                if resp.status not in (202, 422):
                    raise click.ClickException(f"ingest answered {resp.status}: {body}")
                accepted += body.get("accepted", 0)
                refused += body.get("refused", 0)
    return accepted, refused


async def _metric_samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            text = await resp.text()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _total(samples, name: str) -> float:
    return sum(value for _labels, value in samples.get(name, []))


async def _wait_applied(settings: Settings, expected: int, timeout: float, console: Console) -> float:
    url = f"http://127.0.0.1:{settings.lifecycle_metrics_port}/metrics"
    deadline = time.monotonic() + timeout
    with console.status("lifecycle: applying events ...") as status:
        while True:
            samples = await _metric_samples(url)
            done = _total(samples, "leadflow_lifecycle_events_applied_total") + _total(samples, "leadflow_lifecycle_duplicates_total")
            status.update(f"lifecycle: {int(done)} / {expected} events applied")
            if done >= expected or time.monotonic() > deadline:
                return done
            await asyncio.sleep(0.5)


async def _funnel(settings: Settings) -> list[tuple[str, int]]:
    conn = await connect(settings, role=READER)
    try:
        rows = await conn.fetch("SELECT stage, count(*) AS leads FROM leads GROUP BY stage")
    finally:
        await conn.close()
    counts = {r["stage"]: r["leads"] for r in rows}
    return [(stage, counts.get(stage, 0)) for stage in STAGES]


async def _run(settings: Settings, leads: int, console: Console) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    tag = now.strftime("%H%M%S")
    events = list(generate_events(leads * 10, seed=int(tag), start=now - timedelta(hours=3),
                                  concurrent_leads=max(10, leads // 4), lead_prefix=f"demo{tag}-",
                                  mean_gap_seconds=3 * 3600 / (leads * 10)))
    before = await _metric_samples(f"http://127.0.0.1:{settings.lifecycle_metrics_port}/metrics")
    already = _total(before, "leadflow_lifecycle_events_applied_total") + _total(before, "leadflow_lifecycle_duplicates_total")
    url = f"http://127.0.0.1:{settings.ingest_port}/v1/events"
    accepted, refused = await _post_all(url, events)
    console.print(f"ingest: {accepted} events accepted, {refused} refused, via POST {url}")
    applied = await _wait_applied(settings, int(already) + accepted, 120, console)
    console.print(f"lifecycle: {int(applied - already)} events applied and stored in PostgreSQL")
    await asyncio.sleep(6)  # the SLA monitor reads the lifecycle topic and refreshes its gauges a moment later

    table = Table(title="Funnel: leads per stage (event store)")
    table.add_column("stage")
    table.add_column("leads", justify="right")
    for stage, count in await _funnel(settings):
        table.add_row(stage, str(count))
    console.print(table)

    sla = await _metric_samples(f"http://127.0.0.1:{settings.sla_metrics_port}/metrics")
    outcomes: dict[tuple[str, str], float] = {}
    for labels, value in sla.get("leadflow_sla_outcomes_total", []):
        outcomes[(labels.get("sla", "?"), labels.get("outcome", "?"))] = outcomes.get((labels.get("sla", "?"), labels.get("outcome", "?")), 0) + value
    open_clocks: dict[str, float] = {}
    for labels, value in sla.get("leadflow_sla_clocks_open", []):
        open_clocks[labels.get("sla", "?")] = open_clocks.get(labels.get("sla", "?"), 0) + value
    table = Table(title="SLA clocks (SLA monitor /metrics)")
    for col in ("sla", "met", "breached", "cancelled", "open now"):
        table.add_column(col, justify="right" if col != "sla" else "left")
    for name in sorted({k[0] for k in outcomes} | set(open_clocks)):
        table.add_row(name, *(str(int(outcomes.get((name, o), 0))) for o in ("met", "breached", "cancelled")),
                      str(int(open_clocks.get(name, 0))))
    console.print(table)
    sample_lead = events[0]["lead_id"]
    console.print(
        f"\nLook further:\n"
        f"  .venv/bin/leadflow lead {sample_lead}        one lead's history\n"
        f"  .venv/bin/leadflow funnel --by channel      the funnel by channel\n"
        f"  Prometheus    http://127.0.0.1:{settings.ports.prometheus}  (alerts: /alerts)\n"
        f"  Alertmanager  http://127.0.0.1:{settings.ports.alertmanager}\n"
        f"  Grafana       docker compose up -d grafana, then http://127.0.0.1:3000\n"
        f"  make down     stops everything"
    )


@click.command()
@click.option("--leads", default=300, show_default=True, help="How many leads of sample traffic to send.")
def demo(leads: int) -> None:
    """Start the stack and the services, send sample leads through the HTTP API, show the result."""
    console = Console()
    settings = load_settings()
    try:
        LocalStack(settings).up(log=console.print)
        ServiceProcesses(settings).start(log=console.print)
    except StackError as exc:
        console.print(f"[red]leadflow demo failed:[/red] {exc}")
        sys.exit(1)
    asyncio.run(_run(settings, leads, console))
