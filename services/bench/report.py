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

    table = Table(title=f"leadflow bench — {doc.get('mode')}, {doc.get('events'):,} events per part "
                        f"(events/s unless noted)", show_lines=False)
    for col, justify in (("#", "right"), ("measured", "left"), ("value", "right"), ("ratio", "right"),
                         ("target", "left"), ("met", "center")):
        table.add_column(col, justify=justify)

    def note(key: str) -> str:
        return " [red]*[/red]" if key in reasons else ""

    def row(num: str, label: str, key: str | None, value: str, ratio: str = "", target: str = "", met: str = "") -> None:
        table.add_row(num, label + (note(key) if key else ""), value, ratio, target, met)

    core = parts.get("core", {})
    t = targets.get("core_events_per_s", {})
    row("1", "core, service path (per CPU-s)", "core_events_per_s", _num(doc.get("core_events_per_s")), "",
        t.get("target", ""), _met(t.get("met")))
    for name, label in (("codec", "  core, fastavro codec path"), ("batch", "  core, batch prototype")):
        v = core.get("variants", {}).get(name, {})
        if v:
            speed = core.get("speedup_vs_service", {}).get(name)
            row("", label, None, _num(v.get("events_per_cpu_s")), f"{_num(speed)}× service" if speed else "")
    row("2", "aiokafka passthrough (ceiling)", "passthrough_events_per_s", _num(doc.get("passthrough_events_per_s")))
    row("3", "Faust peer, same domain work", "faust_peer_events_per_s", _num(doc.get("faust_peer_events_per_s")))
    r1, r2 = targets.get("lifecycle_vs_faust_peer", {}), targets.get("lifecycle_vs_passthrough", {})
    row("4", "lifecycle, Kafka→Postgres→Kafka", "lifecycle_events_per_s", _num(doc.get("lifecycle_events_per_s")),
        f"{_num(ratios.get('lifecycle_vs_faust_peer'))}× peer", r1.get("target", ""), _met(r1.get("met")))
    row("", "", None, "", f"{_num(ratios.get('lifecycle_vs_passthrough'))}× ceiling", r2.get("target", ""),
        _met(r2.get("met")))
    row("5", "Faust do-nothing agent (floor)", "faust_floor_events_per_s", _num(doc.get("faust_floor_events_per_s")))
    r3 = targets.get("sla_monitor_vs_faust_floor", {})
    row("5", "SLA monitor", "sla_monitor_events_per_s", _num(doc.get("sla_monitor_events_per_s")),
        f"{_num(ratios.get('sla_monitor_vs_faust_floor'))}× floor", r3.get("target", ""), _met(r3.get("met")))
    lat = parts.get("latency", {})
    tr = targets.get("latency_rate_per_s", {})
    row("6", "steady HTTP rate held", "latency_rate_per_s", _num(doc.get("latency_rate_per_s")), "",
        tr.get("target", ""), _met(tr.get("met")))
    for key, label in (("lifecycle", "HTTP→lifecycle p50/p99 ms"), ("sla", "HTTP→SLA outcome p50/p99 ms")):
        t = targets.get(f"{key}_p99_ms", {})
        row("6", label, f"{key}_p99_ms", f"{_num(doc.get(f'{key}_p50_ms'))} / {_num(doc.get(f'{key}_p99_ms'))}", "",
            f"p99 {t.get('target', '')}", _met(t.get("met")))
    t = targets.get("pipeline_cpu_us_per_event", {})
    by_rate = doc.get("pipeline_cpu_us_per_event_by_rate") or {}
    others = ", ".join(f"{_num(v)} at {int(r):,}/s" for r, v in by_rate.items() if int(r) != 5000)
    row("6", "pipeline CPU µs/event at 5,000/s", "pipeline_cpu_us_per_event",
        _num(doc.get("pipeline_cpu_us_per_event")), others, t.get("target", ""), _met(t.get("met")))
    for service, mb in (doc.get("rss_mb") or {}).items():
        t = targets.get(f"rss_mb.{service}", {})
        row("6", f"RSS {service}, MB (peak)", f"rss_mb.{service}", _num(mb), "", t.get("target", ""), _met(t.get("met")))
    console.print(table)

    m = doc.get("machine", {})
    console.print(f"[dim]machine: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('memory_mb')} MB, "
                  f"Python {m.get('python')}, Kafka {m.get('kafka_version')}, PostgreSQL {m.get('postgres_version')}; "
                  f"load average at start {m.get('load_average_at_start')}, at end {m.get('load_average_at_end')}[/dim]")
    for rate, cpu in (doc.get("pipeline_cpu_by_rate") or {}).items():
        per = cpu.get("us_per_event") or {}
        parts_text = ", ".join(f"{name} {_num(v)}" for name, v in per.items())
        console.print(f"[dim]pipeline CPU per event at {int(rate):,}/s: {_num(cpu.get('pipeline_us_per_event'))} µs "
                      f"over {cpu.get('events', 0):,} events ({parts_text}; bench not counted)[/dim]")
    leads = lat.get("leads_in_store")
    if leads:
        console.print(f"[dim]part 6 ran with {leads:,} leads in the event store[/dim]")
    if reasons:
        console.print("[red]*[/red] [bold]not measured[/bold]")
        for key, reason in reasons.items():
            first = reason.splitlines()[0] if reason else ""
            console.print(f"  {key}: {first}")
