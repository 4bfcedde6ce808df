"""The demo's summary on a terminal (rich tables) or as JSON."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from services.lifecycle.commands import duration_text
from services.readside.queries import MAIN_PATH


def to_json(summary: dict[str, Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

    return json.dumps(summary, indent=2, default=default, ensure_ascii=False)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(timezone.utc).strftime("%d %b %H:%M")


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=(0, 1))
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def print_summary(console: Console, s: dict[str, Any]) -> None:
    ev = s["events"]
    console.print(f"\n[bold]{s['company']}, {s['month_name']}[/bold]: {ev['sent']:,} events of {ev['leads']:,} leads in "
                  f"{ev['seconds']:.0f} s, {ev['http']:,} over HTTP (website, HubSpot, Salesforce) and {ev['kafka']:,} "
                  f"from the dialer into Kafka; {ev['late']} held by a stalled CRM sync and delivered late.")

    funnel = s["funnel"]
    table = _table(f"Funnel of the {funnel['created']:,} new leads", "stage", "reached", "share")
    for stage in MAIN_PATH:
        n = funnel["reached"].get(stage, 0)
        table.add_row(stage, f"{n:,}", _pct(n / funnel["created"] if funnel["created"] else None))
    for stage in ("rejected", "recycled", "disqualified", "lost"):
        table.add_row(f"[dim]{stage}[/dim]", f"{funnel['reached'].get(stage, 0):,}", "")
    console.print(table)
    m = s["mql_to_sql"]
    console.print(f"MQL → SQL: {m['sql']:,} of the {m['mql']:,} leads that became an MQL in the month reached SQL "
                  f"([bold]{_pct(m['rate'])}[/bold]).\n")

    table = _table("SLA attainment (clocks started, windows starting in the month)",
                   "sla", "met", "breached", "cancelled", "open", "attainment")
    for row in s["slas"]:
        colour = "green" if (row["attainment"] or 0) >= 0.9 else "red"
        table.add_row(row["sla"], str(row["met"]), str(row["breached"]), str(row["cancelled"]), str(row["open"]),
                      f"[{colour}]{_pct(row['attainment'])}[/{colour}]")
    console.print(table)

    table = _table("Volume agreements", "window", "leads", "target", "good fit", "outcome")
    for w in s["windows"]:
        name = (f"week of {w['window_start'].astimezone(timezone.utc):%d %b}" if w["sla"] == "marketing_weekly_volume"
                else f"{w['owner']}, month")
        colour = {"met": "green", "breached": "red"}.get(w["outcome"], "yellow")
        table.add_row(name, str(w["count"]), str(w["target"]), _pct(w["fit_share"]), f"[{colour}]{w['outcome']}[/{colour}]")
    console.print(table)

    table = _table("Clocks per team and rep", "team / rep", "met", "breached", "attainment")
    for team in s["teams"]:
        table.add_row(f"[bold]{team['team']}[/bold]", str(team["met"]), str(team["breached"]), _pct(team["attainment"]))
        for rep in (r for r in s["reps"] if r["team"] == team["team"]):
            table.add_row(f"  {rep['owner']}", str(rep["met"]), str(rep["breached"]), _pct(rep["attainment"]))
    console.print(table)

    table = _table("Worst breaches (times UTC; * no stop yet)", "lead", "sla", "owner", "due", "late by")
    for b in s["worst_breaches"]:
        late = duration_text(b["overdue_seconds"]) + ("" if b["stopped_at"] else " *")
        table.add_row(b["lead_id"], b["sla"], b["owner"] or "-", _when(b["due_at"]), late)
    for column in table.columns:
        column.no_wrap = True
    console.print(table)

    c = s["corrections"]
    parts = ", ".join(f"{sla} {n}" for sla, n in c["by_sla"].items()) or "none"
    console.print(f"Corrections: [bold]{c['total']}[/bold] breaches declared by the clock and then decided by an event "
                  f"that happened in time but arrived later ({parts}).")
    k = s["campaign"]
    judged = "; ".join(f"SLA {k['sla']}: {w['count']} of {w['target']}, [bold]{w['outcome']}[/bold]" for w in k["judged"])
    console.print(f"Joint campaign {k['campaign']}: {k['meetings_booked']} leads booked a meeting before "
                  f"{k['before'][:10]} (goal {k['goal_meetings']}). {judged or 'Not judged by the running policy.'}\n")

    firing = [a for a in s["alerts"] if a["state"] == "firing"]
    pending = [a for a in s["alerts"] if a["state"] != "firing"]
    console.print(f"[bold]Alerts in Prometheus[/bold]: {len(firing)} firing, {len(pending)} pending")
    for a in s["alerts"]:
        scope = "/".join(x for x in (a["sla"], a["team"]) if x)
        console.print(f"  [{'red' if a['state'] == 'firing' else 'yellow'}]{a['state']:<8}[/] {a['alertname']} {scope}")

    n = s["next"]
    console.print("\n[bold]Where to look next[/bold]")
    console.print(f"  {n['report']}\n  {n['console']}\n  {n['lead']}\n  {n['funnel']}\n"
                  f"  Prometheus    {n['prometheus']}\n  Alertmanager  {n['alertmanager']}\n"
                  f"  {n['stop']:<13} stops the stack and the services")
