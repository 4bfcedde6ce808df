"""`leadflow demo`: start the stack and the services, stream last month through them, summarise.

Progress goes to stderr; the summary to stdout (as JSON with --json). The stack and the services
keep running afterwards (`make down` stops them); without --once the demo then runs the console,
when it is installed, in the foreground."""
from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import aiohttp
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from services.common.config import Settings, load_settings
from services.demo.policy import CAMPAIGN_SLA, write_demo_policy
from services.demo.render import print_summary, to_json
from services.demo.stream import DemoError, MonthStreamer, pipeline_counts, wait_for_pipeline
from services.demo.summary import month_counts, wait_for_alerts, where_next
from services.simulator import SimulatedMonth, route_of, simulate_month
from services.simulator.businesstime import berlin_midnight
from services.stack.local_stack import LocalStack
from services.stack.process import StackError
from services.stack.service_processes import ServiceProcesses

COMPANY = "Northwind Analytics"
ALERT_WAIT_S = 90.0


def _parse_month(_ctx, _param, value: str | None) -> datetime | None:
    """--month YYYY-MM -> the `now` that makes it the simulated (previous) month."""
    if value is None:
        return None
    try:
        year, month = (int(part) for part in value.split("-"))
        first_of_next = berlin_midnight(year + (month == 12), month % 12 + 1)
    except ValueError:
        raise click.BadParameter(f"expected a month like 2026-11, got {value!r}") from None
    if first_of_next > datetime.now(timezone.utc):
        raise click.BadParameter(f"{value} has not ended yet: the demo streams a month that is over")
    return first_of_next


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


async def _run(settings: Settings, month: SimulatedMonth, now: datetime, console: Console) -> dict[str, Any]:
    before = await pipeline_counts(settings)
    with _progress(console) as progress:
        sending = progress.add_task(f"streaming {month.month}", total=len(month.events))

        def on_day(day: str, sent: int) -> None:
            progress.update(sending, completed=sent, description=f"streaming {month.month}: {day}")

        async def before_late_batch(sent: int) -> None:
            progress.update(sending, description="CRM sync down: pipeline catches up")
            await wait_for_pipeline(settings, before, sent, lambda *counts: None)

        stats = await MonthStreamer(settings, on_day, before_late_batch).run(month)
        progress.update(sending, description=f"sent {month.month} (HTTP and Kafka)")
        lifecycle = progress.add_task("lifecycle: stored", total=stats.sent)
        sla = progress.add_task("SLA monitor: judged", total=None)

        def on_progress(through_lifecycle: int, stored: int, judged: int) -> None:
            progress.update(lifecycle, completed=through_lifecycle)
            progress.update(sla, completed=judged, total=max(stored, 1))

        await wait_for_pipeline(settings, before, stats.sent, on_progress)
        waiting = progress.add_task("Prometheus: waiting for alerts", total=None)
        alerts = await wait_for_alerts(settings, ALERT_WAIT_S,
                                       lambda seconds: progress.update(waiting, description=f"Prometheus: alerts ({seconds:.0f} s)"))
        progress.update(waiting, total=1, completed=1)
    if stats.refused:
        raise DemoError(f"ingest refused {len(stats.refused)} simulated events, e.g. {stats.refused[0]}")
    counts = await month_counts(settings, month, now, CAMPAIGN_SLA)
    sample = next((b["lead_id"] for b in counts["worst_breaches"]), month.events[0]["lead_id"])
    return {
        "company": COMPANY,
        "month": month.month,
        "month_name": datetime.strptime(month.month, "%Y-%m").strftime("%B %Y"),
        "period": {"start": month.month_start, "end": month.month_end, "simulated_from": month.start},
        "events": {"sent": stats.sent, "leads": month.leads, "http": stats.sent_http, "kafka": stats.sent_kafka,
                   "late": len(month.late_event_ids), "seconds": round(stats.seconds, 1),
                   "by_route": {r: sum(1 for e in month.events if route_of(e) == r) for r in ("http", "kafka")}},
        **counts,
        "alerts": alerts,
        "next": where_next(settings, month, sample),
    }


@click.command("demo")
@click.option("--once", is_flag=True, help="Exit after the summary (for tests and scripts); do not run the console.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout; progress goes to stderr.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the simulated month.")
@click.option("--month", "now", callback=_parse_month, metavar="YYYY-MM",
              help="The month to simulate (default: last month). It must be over.")
def demo(once: bool, as_json: bool, seed: int, now: datetime | None) -> None:
    """Start the stack and the services, stream a B2B company's last month through the pipeline
    (web forms and CRM over HTTP, the dialer into Kafka) and summarise: the funnel, MQL to SQL,
    SLA attainment per SLA, team and rep, the worst breaches, the corrections and the alerts."""
    console = Console(stderr=True)
    settings = load_settings()
    now = now or datetime.now(timezone.utc).replace(microsecond=0)
    try:
        month = simulate_month(now, seed)
        LocalStack(settings).up(log=console.print)
        # A month streamed at once is declared late; the demo's policy lets it page as it would
        # have live, and judges the month's campaign goal (services/demo/policy.py). A policy the
        # user set is kept; services already running keep the policy they started with.
        policy = settings.sla_policy_file or str(write_demo_policy(month, settings.home))
        ServiceProcesses(settings).start(env={"LEADFLOW_SLA_POLICY": policy}, log=console.print)
        summary = asyncio.run(_run(settings, month, now, console))
        summary["policy"] = policy
    except (StackError, DemoError) as exc:
        raise click.ClickException(f"leadflow demo: {exc}") from None
    except aiohttp.ClientError as exc:
        raise click.ClickException(f"leadflow demo: a service stopped answering ({exc}); "
                                   f"see the logs in {settings.home / 'services'}") from None
    if as_json:
        click.echo(to_json(summary))
    else:
        print_summary(Console(), summary)
    if not once:
        if importlib.util.find_spec("services.console") is not None:
            console.print("Starting the console (Ctrl-C stops it; the stack keeps running until make down).")
            sys.exit(subprocess.call([sys.executable, "-m", "services.cli", "console"]))
