"""`leadflow up`, `leadflow down`, `leadflow status`."""
from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from services.common.config import load_settings
from services.stack.local_stack import LocalStack
from services.stack.process import StackError


@click.command()
@click.option("--brokers", type=click.IntRange(1, 9), default=None,
              help="Kafka nodes (KRaft, each broker and controller; default: as the last `up` here, else 1). "
                   "3 gives the topics replication 3 and min.insync.replicas 2.")
def up(brokers: int | None) -> None:
    """Start Kafka, PostgreSQL, Prometheus and Alertmanager on 127.0.0.1 (idempotent)."""
    stack = LocalStack(load_settings(), brokers=brokers)
    try:
        stack.up(log=click.echo)
    except StackError as exc:
        click.echo(f"leadflow up failed: {exc}", err=True)
        sys.exit(1)


@click.command()
def down() -> None:
    """Stop everything `leadflow up` started."""
    try:
        LocalStack(load_settings()).down(log=click.echo)
    except StackError as exc:
        click.echo(f"leadflow down failed: {exc}", err=True)
        sys.exit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(as_json: bool) -> None:
    """Show each component, its address and whether it answers. Exit 1 if the core stack is down."""
    rows = LocalStack(load_settings()).status()
    core = {"kafka", "postgres", "prometheus", "alertmanager"}
    if as_json:
        import json

        click.echo(json.dumps([{"component": r.name, "address": r.address, "answers": r.answers} for r in rows], indent=2))
    else:
        table = Table(title="leadflow stack")
        for col in ("component", "address", "answers"):
            table.add_column(col)
        for row in rows:
            table.add_row(row.name, row.address, "[green]yes[/green]" if row.answers else "[red]no[/red]")
        Console().print(table)
    sys.exit(0 if all(r.answers for r in rows if r.name in core) else 1)


@click.command()
def topics() -> None:
    """Create the pipeline's topics on the configured Kafka (partitions and replication from settings)."""
    import asyncio

    from services.common.kafka import ensure_topics

    settings = load_settings()
    created = asyncio.run(ensure_topics(settings))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")
