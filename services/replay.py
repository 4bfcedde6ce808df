"""`leadflow replay`: a file of envelopes -> lifecycle domain -> SLA domain -> JSON lines (contract §5).

No Kafka, no Postgres: the same pure domain code the services run. The whole file is read and
validated before anything is printed, so a bad line fails the run with nothing on stdout.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, TextIO

import click

from services.common.envelope import Event, InvalidEvent, parse_event
from services.common.timefmt import parse_rfc3339

if TYPE_CHECKING:
    from services.sla_monitor.domain import Policy

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """A line of the events file, the --until value or the policy cannot be used."""


def read_events(lines: Iterable[str], name: str) -> list[Event]:
    """Parse one envelope per line (blank lines skipped); BadInput names the line and field."""
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{name}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        try:
            events.append(parse_event(obj))
        except InvalidEvent as exc:
            where = exc.field or "event"
            raise BadInput(f"{name}:{number}: {where}: {exc.reason}") from None
    return events


def transition_lines(events: list[Event]) -> Iterable[dict[str, Any]]:
    from services.lifecycle.domain import run_log

    for transition in run_log(events):
        yield transition.to_contract_json()


def read_policy(policy_path: Path | None) -> Policy:
    from services.sla_monitor.domain import PolicyError, load_policy

    try:
        return load_policy(policy_path)
    except PolicyError as exc:
        raise BadInput(f"--policy: {exc}") from None


def outcome_lines(events: list[Event], policy: Policy, until: datetime | None) -> list[dict[str, Any]]:
    from services.lifecycle.domain import run_log
    from services.sla_monitor.domain import replay_outcomes

    return replay_outcomes(policy, run_log(events), until)


def write_lines(out: TextIO, rows: Iterable[dict[str, Any]]) -> None:
    dumps = json.dumps
    out.writelines(dumps(row, ensure_ascii=False) + "\n" for row in rows)
    out.flush()


@click.command("replay")
@click.argument("events_file", metavar="EVENTS.jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="SLA policy TOML file (default: the built-in contract policy).")
@click.option("--until", "until_text", default=None, metavar="RFC3339",
              help="Clock time at the end, and the cut-off: events that occurred after it are left "
                   "out. Default: the largest occurred_at in the file.")
@click.option("--emit", type=click.Choice(["outcomes", "transitions"]), default="outcomes", show_default=True,
              help="One line per clock and judged window, or one line per applied event.")
def replay(events_file: Path, policy_path: Path | None, until_text: str | None, emit: str) -> None:
    """Replay a JSONL file of event envelopes (in log order) through the lifecycle and SLA rules."""
    try:
        until = None
        if until_text is not None:
            try:
                until = parse_rfc3339(until_text)
            except ValueError as exc:
                raise BadInput(f"--until: {exc}") from None
        policy = read_policy(policy_path) if emit == "outcomes" else None
        with events_file.open(encoding="utf-8") as handle:
            events = read_events(handle, str(events_file))
        if until is not None:
            events = [event for event in events if event.occurred_at <= until]
        if emit == "transitions":
            write_lines(sys.stdout, transition_lines(events))
        else:
            assert policy is not None
            write_lines(sys.stdout, outcome_lines(events, policy, until))
    except BadInput as exc:
        click.echo(f"leadflow replay: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except UnicodeDecodeError as exc:
        click.echo(f"leadflow replay: {events_file}: not UTF-8 ({exc.reason})", err=True)
        sys.exit(EXIT_BAD_INPUT)
