"""The lifecycle's `leadflow` subcommands: `lifecycle` (run the service), `lead`, `funnel`, `rebuild`.

The queries live in services/lifecycle/store.py (and rebuild.py); this module parses options and
prints, as rich tables or as JSON (`--json`). Settings come from LEADFLOW_* like the services.
"""
from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import Any

import click

from services.common.config import Settings, load_settings
from services.common.timefmt import duration_text, format_utc, parse_rfc3339
from services.lifecycle.domain import STAGES

STAGE_ORDER = STAGES  # main path, then off the path: the domain's one list


# --- helpers ----------------------------------------------------------------------------------------------

def _settings() -> Settings:
    try:
        return load_settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


async def _connect(settings: Settings, role=None):
    """A connection to the event store as `role` (the reader unless told otherwise), after the
    admin login made sure the store exists: an empty store is a store."""
    from services.common.db_roles import READER
    from services.common.postgres import connect
    from services.lifecycle.store import prepare_store

    try:
        await prepare_store(settings)
        return await connect(settings, role=role or READER)
    except (OSError, Exception) as exc:  # asyncpg raises many kinds; the message says enough
        if isinstance(exc, click.ClickException):
            raise
        raise click.ClickException(f"cannot reach PostgreSQL ({type(exc).__name__}: {exc}); is the stack up?") from None


def _run(coro):
    return asyncio.run(coro)


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def _iso(value: Any) -> Any:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=_iso, ensure_ascii=False))


# --- leadflow lifecycle ------------------------------------------------------------------------------------

@click.command("lifecycle")
def lifecycle() -> None:
    """Run the lifecycle service (leadflow.events -> event store -> leadflow.lifecycle) until SIGTERM."""
    from services.lifecycle.app import main as service_main

    sys.exit(service_main())


# --- leadflow lead -----------------------------------------------------------------------------------------

def lead_report(lead, events, duplicates) -> dict[str, Any]:
    """A lead's history as data: events, the stages it went through with the time in each, its
    owners, and the duplicates refused for it."""
    history = []
    stages: list[dict[str, Any]] = []
    owners: list[dict[str, Any]] = []
    for r in events:
        history.append({
            "version": r["version"], "event_id": r["event_id"], "type": r["type"],
            "occurred_at": r["occurred_at"], "recorded_at": r["recorded_at"], "source": r["source"],
            "from": r["from_stage"], "to": r["to_stage"], "ignored": r["ignored"],
            "owner": r["owner"], "team": r["team"], "channel": r["channel"], "segment": r["segment"],
            "fit": r["fit"], "payload": json.loads(r["payload"]),
            "kafka": {"topic": r["kafka_topic"], "partition": r["kafka_partition"], "offset": r["kafka_offset"]},
        })
        if not stages or (r["ignored"] is None and r["to_stage"] != stages[-1]["stage"]):
            if stages:
                prev = stages[-1]
                prev["left_at"] = r["occurred_at"]
                prev["seconds"] = (r["occurred_at"] - prev["entered_at"]).total_seconds()
            stages.append({"stage": r["to_stage"], "entered_at": r["occurred_at"], "left_at": None,
                           "seconds": None, "version": r["version"], "event_type": r["type"]})
        if (r["owner"], r["team"]) != ((owners[-1]["owner"], owners[-1]["team"]) if owners else (None, None)):
            owners.append({"owner": r["owner"], "team": r["team"], "from": r["occurred_at"], "version": r["version"]})
    return {
        "lead": None if lead is None else {k: lead[k] for k in lead.keys()},
        "events": history,
        "stages": stages,
        "owners": owners,
        "duplicates": [dict(d) for d in duplicates],
    }


@click.command("lead")
@click.argument("lead_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def lead(lead_id: str, as_json: bool) -> None:
    """Show a lead's history from the event store: events, stages and time in each, owners, and
    its SLA clocks (due, outcome, corrected) as the SLA monitor holds them."""
    from services.lifecycle.store import lead_history
    from services.readside.queries import lead_clocks

    settings = _settings()

    async def go():
        conn = await _connect(settings)
        try:
            return (*await lead_history(conn, lead_id), await lead_clocks(conn, lead_id))
        finally:
            await conn.close()

    row, events, duplicates, clocks = _run(go())
    if row is None and not events:
        if as_json:
            _echo_json({"lead": None, "events": [], "stages": [], "owners": [], "clocks": [],
                        "duplicates": [dict(d) for d in duplicates]})
        raise click.ClickException(f"no lead {lead_id!r} in the event store")
    report = lead_report(row, events, duplicates)
    report["clocks"] = clocks
    if as_json:
        _echo_json(report)
        return
    _print_lead(lead_id, report)


def _short(value: datetime | None, wide: bool) -> str:
    """UTC time for a table cell: the full date on a wide terminal, `02 Nov 09:14` on a narrow one."""
    if value is None:
        return ""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M") if wide else value.strftime("%d %b %H:%M")


def _print_lead(lead_id: str, report: dict[str, Any]) -> None:
    """Readable at 80 columns: short lines, one or two per event and per clock, nothing cut."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    wide = console.width >= 110
    p = report["lead"] or {}
    console.print(f"[bold]{escape(lead_id)}[/bold]  stage [bold]{p.get('stage')}[/bold] since "
                  f"{_time(p.get('stage_entered_at'))} (version {p.get('version')})")
    console.print(f"  owner {escape(p.get('owner') or '-')} / team {escape(p.get('team') or '-')}")
    console.print(f"  channel {escape(p.get('channel') or '-')}, segment {escape(p.get('segment') or '-')}, "
                  f"fit {p.get('fit')}, created {_time(p.get('created_at'))}")

    console.print("\n[bold]Events[/bold] (log order, times UTC)")
    for e in report["events"]:
        move = e["to"] if e["from"] == e["to"] else f"{e['from'] or '∅'} → {e['to']}"
        console.print(f"  {e['version']:>3}  {_short(e['occurred_at'], wide)}  {e['type']:<26} {move}")
        details = [f"from {e['source']}"]
        if e["ignored"]:
            details.append(f"[yellow]ignored: {e['ignored']}[/yellow]")
        if e["type"] == "lead.assigned" and e["owner"]:
            details.append(f"to {escape(e['owner'])} / {escape(e['team'] or '-')}")
        for key in ("reason", "fit", "score", "kind", "asset", "helpful", "revenue", "amount", "campaign"):
            if key in e["payload"]:
                details.append(f"{key} {escape(str(e['payload'][key]))}")
        if len(details) > 1 or e["ignored"]:
            console.print(f"{'':>{21 + (4 if wide else 0)}}[dim]{', '.join(details)}[/dim]")

    console.print("\n[bold]Stages[/bold]")
    for s in report["stages"]:
        left = _short(s["left_at"], wide) or "(current)"
        console.print(f"  {s['stage']:<12} {_short(s['entered_at'], wide)} → {left:<12}  {duration_text(s['seconds'])}")

    console.print("\n[bold]SLA clocks[/bold]")
    if not report.get("clocks"):
        console.print("  none (no SLA applies yet, or the SLA monitor has not seen this lead)")
    for c in report.get("clocks", []):
        colour = {"met": "green", "breached": "red", "cancelled": "dim", "open": "yellow"}.get(c["outcome"], "")
        outcome = f"[{colour}]{c['outcome']}[/{colour}]" + (" (corrected)" if c["corrected"] else "")
        due = f"due {_short(c['due_at'], wide)}" if c["due_at"] else f"{c['attempts']} of {c['required']} attempts"
        console.print(f"  {c['sla']:<21} started {_short(c['started_at'], wide)}, {due}")
        stopped = f", stopped {_short(c['stopped_at'], wide)}" if c["stopped_at"] else ""
        console.print(f"  {'':<21} {outcome}{stopped}")
    if report["owners"]:
        console.print("\n[bold]Owners[/bold]")
        for o in report["owners"]:
            console.print(f"  {escape(o['owner'] or '-')} / {escape(o['team'] or '-')} from {_time(o['from'])} (v{o['version']})")
    if report["duplicates"]:
        console.print("\n[bold]Duplicates refused[/bold]")
        for d in report["duplicates"]:
            console.print(f"  {escape(d['event_id'])} ({d['type']}, partition {d['kafka_partition']} offset {d['kafka_offset']})")


# --- leadflow funnel ---------------------------------------------------------------------------------------

def _parse_as_of(_ctx, _param, value: str | None) -> datetime | None:
    if value is None or value == "now":
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}") from None


def funnel_report(rows, as_of: datetime | None, by: str | None, clock: str) -> dict[str, Any]:
    totals = {stage: 0 for stage in STAGE_ORDER}
    groups: dict[str, dict[str, int]] = {}
    for stage, group, n in rows:
        totals[stage] = totals.get(stage, 0) + n
        if by:
            groups.setdefault(group if group is not None else "(none)", {})[stage] = n
    report: dict[str, Any] = {"as_of": as_of or datetime.now(timezone.utc), "clock": clock, "by": by,
                              "stages": totals, "leads": sum(totals.values())}
    if by:
        report["groups"] = {g: {stage: counts.get(stage, 0) for stage in totals} for g, counts in sorted(groups.items())}
    return report


@click.command("funnel")
@click.option("--as-of", "as_of", callback=_parse_as_of, metavar="TIME",
              help="RFC 3339 time (default: now). Each lead counts in the stage it was in then.")
@click.option("--by", type=click.Choice(["segment", "channel", "team"]), help="Split the counts by this attribute.")
@click.option("--clock", type=click.Choice(["event", "recorded"]), default="event", show_default=True,
              help="event: by occurred_at (the business timeline); recorded: by when leadflow stored the events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def funnel(as_of: datetime | None, by: str | None, clock: str, as_json: bool) -> None:
    """Count leads per stage as they stood at a moment, from the event log."""
    from services.lifecycle.store import funnel as funnel_query

    settings = _settings()

    async def go():
        conn = await _connect(settings)
        try:
            return await funnel_query(conn, as_of, by, clock)
        finally:
            await conn.close()

    report = funnel_report(_run(go()), as_of, by, clock)
    if as_json:
        _echo_json(report)
        return
    from rich.console import Console
    from rich.table import Table

    title = f"Leads per stage as of {_time(report['as_of'])} ({'event' if clock == 'event' else 'recorded'} time)"
    table = Table(title=title)
    table.add_column("stage")
    names = list(report.get("groups", {}))
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("leads", justify="right")
    for stage, n in report["stages"].items():
        table.add_row(stage, *(str(report["groups"][g][stage]) for g in names), str(n))
    table.add_row("[bold]total[/bold]", *(str(sum(report["groups"][g].values())) for g in names),
                  f"[bold]{report['leads']}[/bold]")
    Console().print(table)


# --- leadflow rebuild --------------------------------------------------------------------------------------

@click.command("rebuild")
@click.option("--fix", is_flag=True, help="Rewrite the projection rows that differ (stop or restart the service after).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def rebuild(fix: bool, as_json: bool) -> None:
    """Recompute the leads projection from the stored events with the domain code; report differences.

    Exit status 0 when the projection matches the events (or was fixed), 1 when it differs."""
    from services.lifecycle.rebuild import rebuild as run_rebuild

    settings = _settings()

    async def go():
        from services.common.db_roles import LIFECYCLE, READER

        conn = await _connect(settings, LIFECYCLE if fix else READER)
        try:
            return await run_rebuild(conn, fix=fix)
        finally:
            await conn.close()

    report = _run(go())
    if as_json:
        _echo_json(report.to_json())
    else:
        click.echo(f"{report.leads} leads, {report.events} events checked.")
        if report.consistent:
            click.echo("The projection matches the events.")
        else:
            click.echo(f"{report.leads_differing} leads differ, {report.missing_in_projection} missing from the projection, "
                       f"{report.orphans_in_projection} in the projection without events, "
                       f"{report.event_mismatches} stored events the domain would record differently.")
            for d in report.differences[:50]:
                click.echo(f"  {d['lead_id']}: {d['field']}: projection {_iso(d['projection'])!r}, "
                           f"events {_iso(d['events'])!r}")
            for m in report.mismatched_events[:20]:
                click.echo(f"  event {m['event_id']} of {m['lead_id']}: stored {m['stored']}, domain {m['domain']}")
        if fix:
            click.echo(f"Fixed {report.fixed} projection rows." if report.fixed else "Nothing to fix.")
    if not report.consistent and not fix:
        sys.exit(1)
