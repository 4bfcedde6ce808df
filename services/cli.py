"""The `leadflow` command. Each subcommand lives in its own module and is imported only when run,
so `leadflow --help` stays fast and no service code (or I/O) loads for commands that do not need it."""
from __future__ import annotations

import importlib

import click

# name -> (module, attribute, one-line help). Add a line here to add a subcommand.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("services.stack.commands", "up", "Start the local Kafka, PostgreSQL, Prometheus and Alertmanager."),
    "down": ("services.stack.commands", "down", "Stop the local stack."),
    "status": ("services.stack.commands", "status", "Show each component, its address and whether it answers."),
    "topics": ("services.stack.commands", "topics", "Create the pipeline's topics on the configured Kafka."),
    "demo": ("services.demo", "demo", "Start everything, send sample leads, show the funnel and the SLA clocks."),
    "replay": ("services.replay", "replay", "Replay a JSONL event file through the lifecycle and SLA rules; print JSON lines."),
    "ingest": ("services.ingest.commands", "ingest", "Run the ingest service: POST /v1/events and the leadflow.inbound consumer."),
    "send": ("services.ingest.send", "send", "Post a JSONL file of events to ingest in batches; print what was refused."),
    "keys": ("services.ingest.commands", "keys", "Make ingest API keys and the hashes its configuration holds."),
    "lifecycle": ("services.lifecycle.commands", "lifecycle", "Run the lifecycle service: leadflow.events to the event store and leadflow.lifecycle."),
    "lead": ("services.lifecycle.commands", "lead", "Show one lead's history from the event store: events, stages, owners, time in each stage."),
    "funnel": ("services.lifecycle.commands", "funnel", "Count leads per stage as they stood at a moment (--as-of), from the event log."),
    "rebuild": ("services.lifecycle.commands", "rebuild", "Recompute the leads projection from the stored events; report (or --fix) differences."),
    "sla-monitor": ("services.sla_monitor.app", "command", "Run the SLA monitor: leadflow.lifecycle to SLA clocks, leadflow.sla and metrics."),
    "report": ("services.report.commands", "report", "The weekly meeting's and the monthly SLA review's report (text, Markdown, JSON, HTML)."),
    "console": ("services.console.commands", "console", "Run the read-only web console: reports, lead pages, clocks at risk."),
    "backtest": ("services.backtest", "backtest", "Replay the stored history under the current and a proposed SLA policy; compare."),
    "bench": ("services.bench.command", "bench", "Benchmark the core, the services and their peers (Kafka, Faust) in one run."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leadflow")
def main() -> None:
    """leadflow: lead lifecycle and marketing-sales SLAs, measured from the event log."""


if __name__ == "__main__":
    main()
