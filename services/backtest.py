"""`leadflow backtest --policy NEW.toml [--from T] [--to T] [--current FILE] [--json]`

"What if we promised two hours instead of one?", answered with the company's own history: the
lifecycle's event store (`lead_events`, every applied event with the lead's attributes after it)
is replayed through the SLA engine twice, under the current policy and under the proposed one,
with the same domain code as `leadflow replay` and the live monitor (`replay_outcomes`: clock time
is the largest occurred_at seen, at the end `--to`). Printed: per SLA and team, attainment
(met / (met + breached), corrections applied) before and after, and every clock or window whose
outcome would change.

- History order: the order the lifecycle stored it (transaction start, then Kafka partition and
  offset), with each lead's events in version order, which is the log order per lead.
- `--to T`: events that occurred after T are left out and clocks still undecided at T are open
  (as `leadflow replay --until`). Default: the largest occurred_at stored.
- `--from T`: only clocks that started, and windows that began, at or after T are compared. The
  replay still starts at the beginning of the history, so those clocks see every earlier event.
- `--current FILE`: the policy in force; default LEADFLOW_SLA_POLICY, else the built-in one.
"""
from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from services.common.timefmt import format_utc, parse_rfc3339

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    pass


# --- reading the history ----------------------------------------------------------------------

_EVENTS_SQL = """
SELECT lead_id, version, event_id, type, occurred_at, source, payload::text AS payload, from_stage, to_stage,
       ignored, channel, segment, fit, owner, team
FROM lead_events
WHERE ($1::timestamptz IS NULL OR occurred_at <= $1)
ORDER BY recorded_at, kafka_topic NULLS LAST, kafka_partition NULLS LAST, kafka_offset NULLS LAST, lead_id, version
"""


def log_order(rows: list[Any]) -> list[Any]:
    """`rows` in their stored order, but with each lead's rows in version order: the lead's
    versions are laid onto the positions its rows took, so leads interleave as stored and
    every lead's log is in order even where the stored order was not."""
    positions: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        positions.setdefault(row["lead_id"], []).append(index)
    out: list[Any] = [None] * len(rows)
    for lead_id, places in positions.items():
        versions = sorted((rows[i] for i in places), key=lambda r: r["version"])
        for place, row in zip(places, versions):
            out[place] = row
    return out


def transition_of(row: Any):
    from services.common.envelope import Event
    from services.lifecycle.domain import UNKNOWN_FIT, Transition

    event = Event(row["event_id"], row["lead_id"], row["type"], row["occurred_at"], row["source"],
                  json.loads(row["payload"]))
    return Transition(row["lead_id"], row["event_id"], row["version"], row["from_stage"], row["to_stage"],
                      row["ignored"], event, row["channel"], row["segment"], row["fit"] or UNKNOWN_FIT,
                      row["owner"], row["team"])


async def read_history(settings, until: datetime | None) -> list[Any]:
    """The stored transitions, in log order (see log_order), up to `until`."""
    import asyncpg

    try:
        from services.common.db_roles import READER, role_dsn

        conn = await asyncpg.connect(role_dsn(settings, READER).reveal(),
                                     server_settings={"search_path": f'"{settings.postgres_schema}"'})
    except (OSError, asyncpg.PostgresError) as exc:
        raise BadInput(f"cannot connect to PostgreSQL: {exc}") from None
    try:
        if await conn.fetchval("SELECT to_regclass('lead_events')") is None:
            raise BadInput(f"no lifecycle event store (lead_events) in schema {settings.postgres_schema!r}")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(_EVENTS_SQL, until)
    finally:
        await conn.close()
    return [transition_of(row) for row in log_order(rows)]


# --- judging ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Judged:
    """The final state of one clock or window after a replay."""

    key: tuple
    sla: str
    team: str
    lead_id: str | None
    scope: dict[str, str]
    outcome: str
    started_at: datetime
    due_at: datetime | None
    stopped_at: datetime | None
    corrected: bool


def judge(policy, transitions: list[Any], until: datetime | None) -> dict[tuple, Judged]:
    """Replay under `policy` (exactly `leadflow replay`'s driver) and take each clock's and judged
    window's final state from the outcome lines. Clock lines come in start order, the order of the
    `started` emissions, which give each line its identity (starting event) and team."""
    from services.sla_monitor.domain import replay_outcomes
    from services.sla_monitor.domain.clocks import STARTED
    from services.sla_monitor.records import owner_team

    started: list[Any] = []
    kinds = {rule.name: rule.kind for rule in policy.rules}

    def keep(emission) -> None:
        if emission.kind == STARTED and emission.clock is not None:
            started.append(emission.clock)

    lines = replay_outcomes(policy, transitions, until, on_emission=keep)
    out: dict[tuple, Judged] = {}
    for clock, line in zip(started, lines):
        if (line["sla"], line["lead_id"]) != (clock.sla, clock.lead_id):  # pragma: no cover - engine contract
            raise RuntimeError(f"outcome lines out of start order at {line}")
        key = ("clock",) + clock.key
        out[key] = Judged(key, clock.sla, clock.team or owner_team(clock.kind), clock.lead_id, {}, line["outcome"],
                          parse_rfc3339(line["started_at"]), _when(line["due_at"]), _when(line["stopped_at"]),
                          bool(line.get("corrected")))
    for line in lines[len(started):]:
        # scope: {} / {"owner": ...} / {"team": ...}, and a pace checkpoint's day
        key = ("window", line["sla"], tuple(sorted(line["scope"].items())), line["window_start"])
        out[key] = Judged(key, line["sla"], owner_team(kinds.get(line["sla"], "")), None, dict(line["scope"]),
                          line["outcome"], parse_rfc3339(line["window_start"]), _when(line["window_end"]), None,
                          False)
    return out


def _when(text: str | None) -> datetime | None:
    return None if text is None else parse_rfc3339(text)


def _in_range(j: Judged, since: datetime | None) -> bool:
    return since is None or j.started_at >= since


def summarise(before: dict[tuple, Judged], after: dict[tuple, Judged], since: datetime | None) -> list[dict]:
    counts: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for side, judged in (("before", before), ("after", after)):
        for j in judged.values():
            if not _in_range(j, since):
                continue
            entry = counts.setdefault((j.sla, j.team), {"before": {}, "after": {}})
            entry[side][j.outcome] = entry[side].get(j.outcome, 0) + 1
    rows = []
    for (sla, team), sides in sorted(counts.items()):
        row: dict[str, Any] = {"sla": sla, "team": team}
        for side in ("before", "after"):
            c = sides[side]
            met, breached = c.get("met", 0), c.get("breached", 0)
            row[side] = {
                "met": met, "breached": breached, "cancelled": c.get("cancelled", 0), "open": c.get("open", 0),
                "attainment": (met / (met + breached)) if met + breached else None,
            }
        rows.append(row)
    return rows


def changes(before: dict[tuple, Judged], after: dict[tuple, Judged], since: datetime | None) -> list[dict]:
    out = []
    for key in sorted(set(before) | set(after), key=lambda k: tuple(str(part) for part in k)):
        b, a = before.get(key), after.get(key)
        if b is not None and a is not None and b.outcome == a.outcome:
            continue  # the same outcome (maybe another due time): not a change anyone sees
        ref = a or b
        assert ref is not None
        if not _in_range(ref, since):
            continue
        out.append({
            "sla": ref.sla, "team": ref.team, "lead_id": ref.lead_id, "scope": ref.scope,
            "started_at": format_utc(ref.started_at),
            "before": _side(b), "after": _side(a),
        })
    out.sort(key=lambda c: (c["sla"], c["started_at"], c["lead_id"] or "", json.dumps(c["scope"])))
    return out


def _side(j: Judged | None) -> dict[str, Any] | None:
    if j is None:
        return None  # no such clock under this policy (scope, enabled)
    side: dict[str, Any] = {"outcome": j.outcome, "due_at": None if j.due_at is None else format_utc(j.due_at),
                            "stopped_at": None if j.stopped_at is None else format_utc(j.stopped_at)}
    if j.corrected:
        side["corrected"] = True
    return side


def backtest_report(current, proposed, transitions: list[Any], since: datetime | None, until: datetime | None,
                    current_name: str, proposed_name: str) -> dict[str, Any]:
    before = judge(current, transitions, until)
    after = judge(proposed, transitions, until)
    end = until
    if end is None and transitions:
        end = max(t.event.occurred_at for t in transitions)
    return {
        "current": {"policy": current_name, "version": current.version},
        "proposed": {"policy": proposed_name, "version": proposed.version},
        "from": None if since is None else format_utc(since),
        "to": None if end is None else format_utc(end),
        "events": len(transitions),
        "leads": len({t.lead_id for t in transitions}),
        "summary": summarise(before, after, since),
        "changes": changes(before, after, since),
    }


# --- printing ---------------------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _delta(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "—"
    points = (after - before) * 100
    return "±0.0" if abs(points) < 0.05 else f"{points:+.1f}"


def _outcome(side: dict | None) -> str:
    if side is None:
        return "no clock"
    text = side["outcome"] + (" (corrected)" if side.get("corrected") else "")
    return text if side["due_at"] is None else f"{text}, due {side['due_at']}"


def print_report(report: dict[str, Any], limit: int, out=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out or sys.stdout, width=160)
    console.print(
        f"Backtest of [bold]{report['proposed']['policy']}[/] ({report['proposed']['version']}) against "
        f"[bold]{report['current']['policy']}[/] ({report['current']['version']}): {report['events']} stored events "
        f"of {report['leads']} leads, up to {report['to'] or '—'}"
        + (f", clocks started from {report['from']}" if report["from"] else ""))
    table = Table(title="Attainment per SLA and team (met / (met + breached))")
    for name, justify in (("sla", "left"), ("team", "left"), ("current: met / breached", "right"),
                          ("attainment", "right"), ("proposed: met / breached", "right"), ("attainment ", "right"),
                          ("Δ points", "right"), ("open / cancelled", "right")):
        table.add_column(name, justify=justify)
    for row in report["summary"]:
        b, a = row["before"], row["after"]
        table.add_row(row["sla"], row["team"], f"{b['met']} / {b['breached']}", _pct(b["attainment"]),
                      f"{a['met']} / {a['breached']}", _pct(a["attainment"]),
                      _delta(b["attainment"], a["attainment"]),
                      f"{b['open']}/{b['cancelled']} → {a['open']}/{a['cancelled']}")
    console.print(table)
    changed = report["changes"]
    if not changed:
        console.print("No lead's outcome would change.")
        return
    table = Table(title=f"{len(changed)} outcomes would change")
    for name in ("sla", "lead / scope", "team", "started", "current policy", "proposed policy"):
        table.add_column(name)
    for change in changed[:limit]:
        subject = change["lead_id"] or ", ".join(f"{k}={v}" for k, v in change["scope"].items()) or "all"
        table.add_row(change["sla"], subject, change["team"], change["started_at"], _outcome(change["before"]),
                      _outcome(change["after"]))
    console.print(table)
    if len(changed) > limit:
        console.print(f"... and {len(changed) - limit} more (--limit, or --json for all)")


# --- the command ------------------------------------------------------------------------------

def _time(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise BadInput(f"{option}: {exc}") from None


def _policy(option: str, path: str | None):
    from services.sla_monitor.domain import PolicyError, load_policy

    try:
        return load_policy(path or None)
    except PolicyError as exc:
        raise BadInput(f"{option}: {exc}") from None


def run_backtest(settings, policy_path: Path, current_path: Path | None, since: datetime | None,
                 until: datetime | None) -> dict[str, Any]:
    current_file = str(current_path) if current_path else (settings.sla_policy_file or None)
    current = _policy("--current" if current_path else "LEADFLOW_SLA_POLICY", current_file)
    proposed = _policy("--policy", str(policy_path))
    transitions = asyncio.run(read_history(settings, until))
    return backtest_report(current, proposed, transitions, since, until,
                           current_file or "built-in policy", str(policy_path))


@click.command("backtest")
@click.option("--policy", "policy_path", required=True, metavar="NEW.toml",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The proposed SLA policy.")
@click.option("--current", "current_path", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The policy in force (default: LEADFLOW_SLA_POLICY, else the built-in policy).")
@click.option("--from", "from_text", default=None, metavar="RFC3339",
              help="Compare only clocks that started (windows that began) at or after this time.")
@click.option("--to", "to_text", default=None, metavar="RFC3339",
              help="Replay events up to this time; clocks undecided then are open. Default: the last event.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as one JSON document.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0),
              help="Changed outcomes listed in the table.")
def backtest(policy_path: Path, current_path: Path | None, from_text: str | None, to_text: str | None,
             as_json: bool, limit: int) -> None:
    """Replay the stored history under the current and a proposed SLA policy and compare them."""
    from services.common.config import ConfigError, load_settings

    try:
        since = _time("--from", from_text)
        until = _time("--to", to_text)
        if since is not None and until is not None and since > until:
            raise BadInput("--from is after --to")
        try:
            settings = load_settings()
        except ConfigError as exc:
            raise BadInput(str(exc)) from None
        report = run_backtest(settings, policy_path, current_path, since, until)
    except BadInput as exc:
        click.echo(f"leadflow backtest: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        print_report(report, limit)

