"""The `leadflow` command. Each subcommand lives in its own module and is imported only when run,
so `leadflow --help` stays fast and no service code (or I/O) loads for commands that do not need it.

`leadflow --help` lists the commands under headings (GROUPS); every command's help ends with an
example. A user's mistake (a bad setting, a policy file that does not load, a stack that is not
up) is one line on stderr and a non-zero exit, never a traceback; a bug still shows one."""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class Entry:
    module: str
    attr: str
    help: str
    group: str
    example: str


# The headings of `leadflow --help`, in order.
GROUPS = ("Stack", "Sending data", "History", "SLAs", "Reports", "Services", "Benchmark")

# name -> where it lives, its one-line help, its heading and an example. Add a line to add a command;
# a command whose module is not installed (yet) is not listed.
COMMANDS: dict[str, Entry] = {
    "demo": Entry("services.demo.command", "demo", "Start everything, stream a simulated month through the pipeline, summarise it.",
                  "Stack", "leadflow demo --once --json"),
    "up": Entry("services.stack.commands", "up", "Start the local Kafka, PostgreSQL, Prometheus and Alertmanager.",
                "Stack", "leadflow up"),
    "down": Entry("services.stack.commands", "down", "Stop the local stack and the services.", "Stack", "leadflow down"),
    "status": Entry("services.stack.commands", "status", "Show each component, its address and whether it answers.",
                    "Stack", "leadflow status --json"),
    "topics": Entry("services.stack.commands", "topics", "Create the pipeline's topics on the configured Kafka.",
                    "Stack", "LEADFLOW_KAFKA_BOOTSTRAP=kafka-1:9092 leadflow topics"),
    "send": Entry("services.ingest.send", "send", "Post a JSONL file of events to ingest in batches; print what was refused.",
                  "Sending data", "leadflow send events.jsonl --key \"$LEADFLOW_API_KEY\""),
    "keys": Entry("services.ingest.commands", "keys", "Make ingest API keys and the hashes its configuration holds.",
                  "Sending data", "leadflow keys new hubspot"),
    "lead": Entry("services.lifecycle.commands", "lead", "One lead's history: events, stages, owners and SLA clocks.",
                  "History", "leadflow lead nw-202611-0001"),
    "funnel": Entry("services.lifecycle.commands", "funnel", "Count leads per stage as they stood at a moment, from the event log.",
                    "History", "leadflow funnel --as-of 2026-11-30T23:00:00Z --by channel"),
    "rebuild": Entry("services.lifecycle.commands", "rebuild", "Recompute the leads projection from the stored events; report (or --fix) differences.",
                     "History", "leadflow rebuild --json"),
    "replay": Entry("services.replay", "replay", "Replay a JSONL event file through the lifecycle and SLA rules; print JSON lines.",
                    "SLAs", "leadflow replay events.jsonl --until 2026-12-01T00:00:00Z"),
    "backtest": Entry("services.backtest", "backtest", "Replay the stored history under the current and a proposed SLA policy; compare.",
                      "SLAs", "leadflow backtest --policy docs/policies/seed-003-speed-to-lead.toml"),
    "report": Entry("services.report.commands", "report", "The weekly meeting's or the monthly SLA review's report (text, Markdown, JSON, HTML).",
                    "Reports", "leadflow report --month 2026-11 --format html --out report.html"),
    "console": Entry("services.console.commands", "console", "Run the read-only web console: reports, lead pages, clocks at risk (http://127.0.0.1:8090).",
                     "Reports", "leadflow console"),
    "ingest": Entry("services.ingest.commands", "ingest", "Run the ingest service: POST /v1/events and the leadflow.inbound consumer.",
                    "Services", "leadflow ingest --port 8080"),
    "lifecycle": Entry("services.lifecycle.commands", "lifecycle", "Run the lifecycle service: leadflow.events to the event store and leadflow.lifecycle.",
                       "Services", "leadflow lifecycle"),
    "sla-monitor": Entry("services.sla_monitor.app", "command", "Run the SLA monitor: leadflow.lifecycle to SLA clocks, leadflow.sla and metrics.",
                         "Services", "LEADFLOW_SLA_POLICY=deploy/policy/teams-and-holidays.toml leadflow sla-monitor"),
    "bench": Entry("services.bench.command", "bench", "Benchmark the core, the services and their peers (Kafka, Faust) in one run.",
                   "Benchmark", "leadflow bench --quick --json bench.json"),
}


def available(name: str) -> bool:
    """A command is offered when its module can be found (report and console come with their branch)."""
    try:
        return importlib.util.find_spec(COMMANDS[name].module) is not None
    except ModuleNotFoundError:
        return False


def example_epilog(example: str) -> str:
    # \b keeps click from re-wrapping the example line.
    return f"\b\nExample:\n  {example}"


def user_error_message(exc: BaseException) -> str | None:
    """The one line for an exception caused by the user's input or setup; None for anything else
    (a bug, which keeps its traceback)."""
    from services.common.config import ConfigError

    if isinstance(exc, ConfigError):
        return f"configuration: {exc}"
    try:
        from services.sla_monitor.domain import PolicyError
    except ImportError:  # pragma: no cover - the domain ships with the package
        PolicyError = ()  # type: ignore[assignment]
    if PolicyError and isinstance(exc, PolicyError):
        return f"policy: {exc}"
    try:
        from aiokafka.errors import KafkaConnectionError
    except ImportError:  # pragma: no cover
        KafkaConnectionError = ()  # type: ignore[assignment]
    if KafkaConnectionError and isinstance(exc, KafkaConnectionError):
        return f"cannot reach Kafka ({exc}); is the stack up? (leadflow up, leadflow status)"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({exc}); is the stack up? (leadflow up, leadflow status)"
    return None


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not available(name):
            return None
        entry = COMMANDS[name]
        command = getattr(importlib.import_module(entry.module), entry.attr)
        if not command.epilog:
            command.epilog = example_epilog(entry.example)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        for group in GROUPS:
            rows = [(name, COMMANDS[name].help) for name in names if COMMANDS[name].group == group]
            if rows:
                with formatter.section(group):
                    formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:  # noqa: BLE001 - user errors become one line, the rest re-raised
            message = user_error_message(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=example_epilog("make demo      # or: leadflow demo"))
@click.version_option(package_name="leadflow")
def main() -> None:
    """leadflow: lead lifecycle and marketing-sales SLAs, measured from the event log."""


if __name__ == "__main__":
    main()
