"""`leadflow bench [--events N] [--quick] [--json FILE]`: measure the core, the services and their
peers in one run on the bench's own Kafka and PostgreSQL, print the table, write the JSON."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from services.bench.runner import ALL_PARTS, Options, run
from services.stack.process import StackError

QUICK_EVENTS = 30_000
QUICK_DEADLINE_S = 165.0
FULL_EVENTS = 200_000


@click.command("bench")
@click.option("--events", "events", type=click.IntRange(min=1000), default=None,
              help=f"Events per Kafka part (default {QUICK_EVENTS:,} with --quick, else {FULL_EVENTS:,}); "
                   "the Faust peer gets at most 10,000 (quick) or 60,000.")
@click.option("--quick", is_flag=True, help="A short run (under 3 minutes): fewer events, shorter latency run.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the numbers to this file as JSON.")
@click.option("--parts", default=",".join(ALL_PARTS), show_default=True,
              help="Comma-separated parts to run; the others are reported as not measured.")
@click.option("--partitions", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Partitions of every topic the bench creates.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the traffic generator.")
@click.option("--instances", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Lifecycle service processes sharing the partitions in part 4.")
@click.option("--rates", default=None, metavar="R1,R2,...",
              help="The latency ladder of part 6 in events/s, tried in order until one is sustained "
                   "[default: 5000,2500,1000,500,250, then 5000 and 1000 if not run, for the pipeline CPU "
                   "per event]; each rung reports the pipeline's CPU per event.")
def bench(events: int | None, quick: bool, json_path: Path | None, parts: str, partitions: int, seed: int,
          instances: int, rates: str | None) -> None:
    """Benchmark leadflow against its peers: core, passthrough, Faust, lifecycle, SLA monitor, latency."""
    chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
    unknown = [p for p in chosen if p not in ALL_PARTS]
    if unknown:
        raise click.BadParameter(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(ALL_PARTS)}",
                                 param_hint="--parts")
    latency: dict = {}
    if rates is not None:
        try:
            ladder = [int(r) for r in rates.split(",") if r.strip()]
        except ValueError:
            ladder = []
        if not ladder or min(ladder) < 10:
            raise click.BadParameter(f"expected whole events/s of at least 10, comma-separated, got {rates!r}",
                                     param_hint="--rates")
        latency["rates"] = ladder
        latency["cpu_rates"] = []   # a ladder of one's own: the CPU per event of its rungs only
    import logging

    # aiokafka logs every retry while a topic the bench just created elects its leaders.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    console = Console(stderr=True)
    options = Options(events=events or (QUICK_EVENTS if quick else FULL_EVENTS), quick=quick, parts=chosen,
                      partitions=partitions, seed=seed, deadline_s=QUICK_DEADLINE_S if quick else None,
                      instances=instances, latency=latency)
    try:
        result = run(options, log=lambda msg: console.print(f"[dim]{msg}[/dim]"))
    except StackError as exc:
        click.echo(f"leadflow bench: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("leadflow bench: interrupted; everything it started is stopped", err=True)
        sys.exit(130)
    doc = result.to_json()
    from services.bench.report import render

    render(doc, Console())
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        console.print(f"[dim]JSON written to {json_path}[/dim]")
