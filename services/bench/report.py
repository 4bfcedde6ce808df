"""The table `leadflow bench` prints: the same numbers as the JSON document, with the ratios and the
targets, and the reason beside every figure that could not be measured."""
from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.table import Table


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text}{unit}"


def _met(flag: bool | None) -> str:
    return "[dim]n/a[/dim]" if flag is None else ("[green]yes[/green]" if flag else "[red]no[/red]")


def render(doc: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    targets = doc.get("targets", {})
    reasons: Mapping[str, str] = doc.get("reasons", {})
    parts = doc.get("parts", {})
    ratios = doc.get("ratios", {})

    table = Table(title=f"leadflow bench ({doc.get('mode')}, {doc.get('events'):,} events)", show_lines=False)
    for col, justify in (("#", "right"), ("measured", "left"), ("figure", "right"), ("ratio", "right"),
                         ("target", "left"), ("met", "center")):
        table.add_column(col, justify=justify)

    def note(key: str) -> str:
        return f" [dim](see {key})[/dim]" if key in reasons else ""

    core = parts.get("core", {})
    t = targets.get("core_events_per_s", {})
    table.add_row("1", "core: decode + apply + encode, service path (events/CPU-s)" + note("core_events_per_s"),
                  _num(doc.get("core_events_per_s")), "", t.get("target", ""), _met(t.get("met")))
    for name, label in (("codec", "core, general codec path (fastavro)"), ("batch", "core, batch prototype (proposed)")):
        v = core.get("variants", {}).get(name, {})
        if v:
            speed = core.get("speedup_vs_service", {}).get(name)
            table.add_row("", label, _num(v.get("events_per_cpu_s")), f"{_num(speed)}× service" if speed else "", "", "")
    table.add_row("2", "passthrough ceiling: aiokafka consume → produce (events/s)" + note("passthrough_events_per_s"),
                  _num(doc.get("passthrough_events_per_s")), "", "", "")
    table.add_row("3", "Faust peer: agent doing the same domain work (events/s)" + note("faust_peer_events_per_s"),
                  _num(doc.get("faust_peer_events_per_s")), "", "", "")
    r1, r2 = targets.get("lifecycle_vs_faust_peer", {}), targets.get("lifecycle_vs_passthrough", {})
    table.add_row("4", "lifecycle service, Kafka → Postgres → Kafka (events/s)" + note("lifecycle_events_per_s"),
                  _num(doc.get("lifecycle_events_per_s")), f"{_num(ratios.get('lifecycle_vs_faust_peer'))}× peer",
                  r1.get("target", ""), _met(r1.get("met")))
    table.add_row("", "", "", f"{_num(ratios.get('lifecycle_vs_passthrough'))}× passthrough",
                  r2.get("target", ""), _met(r2.get("met")))
    table.add_row("5", "Faust floor: do-nothing agent on leadflow.lifecycle (events/s)" + note("faust_floor_events_per_s"),
                  _num(doc.get("faust_floor_events_per_s")), "", "", "")
    r3 = targets.get("sla_monitor_vs_faust_floor", {})
    table.add_row("5", "SLA monitor on leadflow.lifecycle (events/s)" + note("sla_monitor_events_per_s"),
                  _num(doc.get("sla_monitor_events_per_s")), f"{_num(ratios.get('sla_monitor_vs_faust_floor'))}× floor",
                  r3.get("target", ""), _met(r3.get("met")))
    lat = parts.get("latency", {})
    rate = doc.get("latency_rate_per_s")
    tr = targets.get("latency_rate_per_s", {})
    table.add_row("6", "steady HTTP rate sustained for the latency run (events/s)" + note("latency_rate_per_s"),
                  _num(rate), "", tr.get("target", ""), _met(tr.get("met")))
    for key, label in (("lifecycle", "HTTP → lifecycle record"), ("sla", "HTTP → SLA outcome")):
        t = targets.get(f"{key}_p99_ms", {})
        table.add_row("6", f"latency {label}: p50 / p99 (ms)" + note(f"{key}_p99_ms"),
                      f"{_num(doc.get(f'{key}_p50_ms'))} / {_num(doc.get(f'{key}_p99_ms'))}", "",
                      f"p99 {t.get('target', '')}", _met(t.get("met")))
    leads = lat.get("leads_in_store")
    for service, mb in (doc.get("rss_mb") or {}).items():
        t = targets.get(f"rss_mb.{service}", {})
        label = f"resident memory {service} (MB)" + (f", {leads:,} leads in the store" if leads else "")
        table.add_row("6", label + note(f"rss_mb.{service}"), _num(mb), "", t.get("target", ""), _met(t.get("met")))
    console.print(table)

    m = doc.get("machine", {})
    console.print(f"[dim]machine: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('memory_mb')} MB, "
                  f"Python {m.get('python')}, Kafka {m.get('kafka_version')}, PostgreSQL {m.get('postgres_version')}; "
                  f"load average at start {m.get('load_average_at_start')}, at end {m.get('load_average_at_end')}[/dim]")
    if reasons:
        console.print("[bold]Not measured[/bold]")
        for key, reason in reasons.items():
            first = reason.splitlines()[0] if reason else ""
            console.print(f"  {key}: {first}")
