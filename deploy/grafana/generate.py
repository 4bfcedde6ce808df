"""The leadflow Grafana dashboards, as code (grafana-foundation-sdk).

    python -m deploy.grafana.generate            # (from the repository root) rewrite the JSON
    python -m deploy.grafana.generate --check    # exit 1 if the committed JSON is out of date

writes ``deploy/grafana/dashboards/{lead-funnel,sla-attainment,pipeline-health}.json``; Grafana
loads them through ``deploy/grafana/provisioning/dashboards/leadflow.yml``. Edit this file,
never the JSON; ``tests/unit/deploy/test_dashboards.py`` fails when the two differ.

``panel_queries()`` lists every PromQL expression of every panel (for the end-to-end test that
runs them against a live Prometheus); ``resolve_expr()`` substitutes the Grafana variables
(``$sla``, ``$team``, ``$channel``, ``$segment``, ``$__range``, ``$__rate_interval``) so the
expression can be sent to Prometheus' HTTP API as is.

Metric names: docs/metrics.md. Recording rules: deploy/prometheus/rules/recording.yml.
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

DATASOURCE_UID = "leadflow-prometheus"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DS = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

# Filters used by the panels; each is a dashboard variable (multi-value, "All" = .*).
SLA_TEAM = 'sla=~"$sla", team=~"$team"'
CHANNEL_SEGMENT = 'channel=~"$channel", segment=~"$segment"'

Target = tuple[str, str]  # (PromQL, legend format)


# --------------------------------------------------------------------------- building blocks


class Board:
    """A dashboard builder that numbers panels and queries so the JSON is stable."""

    def __init__(self, uid: str, title: str, description: str, time_from: str, tags: Sequence[str]) -> None:
        self._next_id = 0
        self.builder = (
            dashboard.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["leadflow", *tags])
            .editable()
            .timezone("browser")
            .time(time_from, "now")
            .refresh("30s")
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .link(
                dashboard.DashboardLink("leadflow dashboards")
                .type(dm.DashboardLinkType.DASHBOARDS)
                .tags(["leadflow"])
                .as_dropdown(True)
                .include_vars(False)
                .keep_time(True)
            )
        )

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def variable(self, name: str, label: str, query: str) -> "Board":
        self.builder.with_variable(
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(DS)
            .query(query)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
        )
        return self

    def row(self, title: str) -> "Board":
        self.builder.with_row(dashboard.Row(title).id(self._id()))
        return self

    def add(self, panel) -> "Board":
        self.builder.with_panel(panel.id(self._id()).datasource(DS))
        return self

    def build(self) -> dm.Dashboard:
        return self.builder.build()


def queries(targets: Iterable[Target], instant: bool = False) -> list[prometheus.Dataquery]:
    out = []
    for ref, (expr, legend) in zip(string.ascii_uppercase, targets):
        q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
        out.append(q.instant() if instant else q.range())
    return out


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


ATTAINMENT_COLOURS = thresholds((None, "red"), (0.9, "orange"), (0.95, "green"))


def ts(
    title: str,
    description: str,
    targets: Sequence[Target],
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    min_: float | None = None,
    max_: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .targets(queries(targets))
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if min_ is not None:
        panel.min(min_)
    if max_ is not None:
        panel.max(max_)
    return panel


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    unit: str = "short",
    w: int = 6,
    h: int = 5,
    colours: dashboard.ThresholdsConfig | None = None,
    mappings: list | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .targets(queries(targets, instant=True))
        .unit(unit)
        .span(w)
        .height(h)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE if colours else common.BigValueColorMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("no data")
    )
    if colours is not None:
        panel.thresholds(colours)
    if mappings:
        panel.mappings(mappings)
    return panel


def bars(
    title: str,
    description: str,
    targets: Sequence[Target],
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    min_: float | None = 0,
    max_: float | None = None,
    colours: dashboard.ThresholdsConfig | None = None,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .targets(queries(targets, instant=True))
        .unit(unit)
        .span(w)
        .height(h)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("no data")
    )
    if min_ is not None:
        panel.min(min_)
    if max_ is not None:
        panel.max(max_)
    if colours is not None:
        panel.thresholds(colours)
    return panel


def table_panel(title: str, description: str, targets: Sequence[Target], w: int = 12, h: int = 8) -> table.Panel:
    """Instant queries joined on their labels, one column per query named after its legend."""
    rename = {f"Value #{ref}": legend for ref, (_, legend) in zip(string.ascii_uppercase, targets)}
    return (
        table.Panel()
        .title(title)
        .description(description)
        .targets([q.format(pm.PromQueryFormat.TABLE) for q in queries(targets, instant=True)])
        .span(w)
        .height(h)
        .show_header(True)
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "indexByName": {}, "renameByName": rename},
            )
        )
    )


# --------------------------------------------------------------------------- Lead funnel


def lead_funnel() -> dm.Dashboard:
    sel = CHANNEL_SEGMENT
    b = Board(
        "leadflow-lead-funnel",
        "Lead funnel",
        "Leads per stage, MQL→SQL and MQL→customer conversion, handoffs and rejection reasons, "
        "by channel and segment. For the weekly marketing–sales meeting and the monthly review.",
        "now-30d",
        ["funnel"],
    )
    b.variable("channel", "Channel", "label_values(leadflow_lifecycle_transitions_total, channel)")
    b.variable("segment", "Segment", "label_values(leadflow_lifecycle_transitions_total, segment)")

    b.row("Leads per stage")
    b.add(bars(
        "Leads per stage now",
        "Current leads in each stage, from the lifecycle projection (all channels and segments).",
        [("sum by (stage) (leadflow_lifecycle_leads)", "{{stage}}")],
        w=8,
    ))
    b.add(ts(
        "Leads per stage over time",
        "Current leads in each stage, from the lifecycle projection (all channels and segments).",
        [("sum by (stage) (leadflow_lifecycle_leads)", "{{stage}}")],
        w=16,
    ))
    b.add(ts(
        "Stage entries per day",
        "Leads entering each stage per day (transitions that changed the stage), for the selected channels and segments.",
        [(f"sum by (to_stage) (increase(leadflow_lifecycle_transitions_total{{{sel}}}[1d]))", "{{to_stage}}")],
        w=12,
    ))
    b.add(ts(
        "New leads per day by channel",
        "lead.created per day by channel.",
        [(f'sum by (channel) (increase(leadflow_lifecycle_transitions_total{{to_stage="new", {sel}}}[1d]))', "{{channel}}")],
        w=12,
    ))

    b.row("Conversion")
    for window in ("7d", "30d"):
        mql = f"sum(channel_segment:leadflow_lifecycle_reached_mql:increase{window}{{{sel}}})"
        b.add(stat_panel(
            f"MQL → SQL ({window})",
            f"Leads reaching SQL or later over leads reaching MQL or later in the last {window} (flow ratio).",
            [(f"sum(channel_segment:leadflow_lifecycle_reached_sql:increase{window}{{{sel}}}) / ({mql} > 0)", "MQL → SQL")],
            unit="percentunit",
        ))
        b.add(stat_panel(
            f"MQL → customer ({window})",
            f"Leads becoming customers over leads reaching MQL or later in the last {window} (flow ratio).",
            [(f"sum(channel_segment:leadflow_lifecycle_reached_customer:increase{window}{{{sel}}}) / ({mql} > 0)", "MQL → customer")],
            unit="percentunit",
        ))
    b.add(ts(
        "MQL → SQL conversion (7d) by channel and segment",
        "channel_segment:leadflow_conversion_mql_to_sql:ratio7d",
        [(f"channel_segment:leadflow_conversion_mql_to_sql:ratio7d{{{sel}}}", "{{channel}} / {{segment}}")],
        unit="percentunit",
        min_=0,
    ))
    b.add(ts(
        "MQL → customer conversion (30d) by channel and segment",
        "channel_segment:leadflow_conversion_mql_to_customer:ratio30d",
        [(f"channel_segment:leadflow_conversion_mql_to_customer:ratio30d{{{sel}}}", "{{channel}} / {{segment}}")],
        unit="percentunit",
        min_=0,
    ))
    b.add(bars(
        "MQL → SQL (30d) by channel",
        "Per channel, over the selected segments.",
        [(
            f"sum by (channel) (channel_segment:leadflow_lifecycle_reached_sql:increase30d{{{sel}}})"
            f" / (sum by (channel) (channel_segment:leadflow_lifecycle_reached_mql:increase30d{{{sel}}}) > 0)",
            "{{channel}}",
        )],
        unit="percentunit",
    ))
    b.add(bars(
        "MQL → SQL (30d) by segment",
        "Per segment, over the selected channels.",
        [(
            f"sum by (segment) (channel_segment:leadflow_lifecycle_reached_sql:increase30d{{{sel}}})"
            f" / (sum by (segment) (channel_segment:leadflow_lifecycle_reached_mql:increase30d{{{sel}}}) > 0)",
            "{{segment}}",
        )],
        unit="percentunit",
    ))

    b.row("Handoff to sales")
    b.add(stat_panel(
        "Handoffs, last 7 days",
        "lead.assigned applied in the last 7 days (marketing → sales handoff).",
        [("leadflow:lifecycle_handoffs:increase7d", "handoffs")],
        w=6,
    ))
    b.add(stat_panel(
        "Handoffs vs weekly target",
        "Handoffs in the last 7 days over the weekly volume target (50 by default).",
        [("leadflow:lifecycle_handoffs_vs_weekly_target:ratio7d", "of target")],
        unit="percentunit",
        w=6,
        colours=thresholds((None, "red"), (1, "green")),
    ))
    b.add(ts(
        "Handoffs per day",
        "lead.assigned applied per day.",
        [('sum(increase(leadflow_lifecycle_events_applied_total{type="lead.assigned"}[1d]))', "handoffs")],
        w=12,
    ))

    b.row("Rejections (feedback to marketing)")
    b.add(bars(
        "Rejection reasons (selected range)",
        "lead.rejected by normalised reason over the dashboard's time range (all channels).",
        [("sort_desc(sum by (reason) (increase(leadflow_lifecycle_rejections_total[$__range])))", "{{reason}}")],
        w=8,
    ))
    b.add(ts(
        "Rejections per day by reason",
        "lead.rejected per day by normalised reason.",
        [("sum by (reason) (increase(leadflow_lifecycle_rejections_total[1d]))", "{{reason}}")],
        w=8,
    ))
    b.add(bars(
        "Rejected by channel and segment (selected range)",
        "Leads moved to rejected, by the lead's channel and segment.",
        [(
            f'sort_desc(sum by (channel, segment) (increase(leadflow_lifecycle_transitions_total{{to_stage="rejected", {sel}}}[$__range])))',
            "{{channel}} / {{segment}}",
        )],
        w=8,
    ))
    return b.build()


# --------------------------------------------------------------------------- SLA attainment


def sla_attainment() -> dm.Dashboard:
    sel = SLA_TEAM
    b = Board(
        "leadflow-sla-attainment",
        "SLA attainment",
        "Marketing and sales SLAs per SLA and team: attainment against objective, breaches, time to "
        "action, clocks at risk, weekly and monthly volume against target. For on-call and the monthly SLA review.",
        "now-7d",
        ["sla"],
    )
    b.variable("sla", "SLA", "label_values(leadflow_sla_outcomes_total, sla)")
    b.variable("team", "Team", "label_values(leadflow_sla_outcomes_total, team)")

    b.row("Attainment")
    b.add(bars(
        "Attainment, last 7 days",
        "met / (met + breached) of clocks decided in the last 7 days. Green at or above the 95 % default objective.",
        [(f"sla_team:leadflow_sla_attainment:ratio7d{{{sel}}}", "{{sla}} / {{team}}")],
        unit="percentunit",
        max_=1,
        colours=ATTAINMENT_COLOURS,
    ))
    b.add(bars(
        "Attainment, last 30 days",
        "met / (met + breached) of clocks decided in the last 30 days (the monthly review figure; corrections not applied).",
        [(f"sla_team:leadflow_sla_attainment:ratio30d{{{sel}}}", "{{sla}} / {{team}}")],
        unit="percentunit",
        max_=1,
        colours=ATTAINMENT_COLOURS,
    ))
    b.add(ts(
        "Attainment (1 day rolling) and objective",
        "Rolling 1-day attainment per SLA and team, with each SLA's objective (leadflow:sla_objective).",
        [
            (f"sla_team:leadflow_sla_attainment:ratio1d{{{sel}}}", "{{sla}} / {{team}}"),
            ('leadflow:sla_objective{sla=~"$sla"}', "objective {{sla}}"),
        ],
        unit="percentunit",
        max_=1,
    ))
    b.add(ts(
        "Error budget burn rate (1h)",
        "Breach ratio over the last hour divided by the error budget (1 − objective). "
        "14.4 pages (with the 5m window), 1 spends the 30-day budget exactly.",
        [(
            f"(1 - sla_team:leadflow_sla_attainment:ratio1h{{{sel}}}) / on(sla) group_left() (1 - leadflow:sla_objective)",
            "{{sla}} / {{team}}",
        )],
        min_=0,
    ))

    b.row("Breaches")
    b.add(ts(
        "Breaches per hour",
        "leadflow_sla_breaches_total per hour by SLA and team.",
        [(f"sum by (sla, team) (increase(leadflow_sla_breaches_total{{{sel}}}[1h]))", "{{sla}} / {{team}}")],
    ))
    b.add(ts(
        "Outcomes per hour",
        "Clocks decided per hour: met, breached, cancelled.",
        [(f"sum by (sla, outcome) (increase(leadflow_sla_outcomes_total{{{sel}}}[1h]))", "{{sla}} {{outcome}}")],
    ))
    b.add(table_panel(
        "Breaches and corrections (selected range)",
        "Breaches over the dashboard's time range, and breaches later corrected to met "
        "(a stop event that happened in time but arrived late).",
        [
            (f"sum by (sla, team) (increase(leadflow_sla_breaches_total{{{sel}}}[$__range]))", "breaches"),
            (f"sum by (sla, team) (increase(leadflow_sla_corrections_total{{{sel}}}[$__range]))", "corrections"),
        ],
        w=24,
        h=7,
    ))

    b.row("Time to action")
    for q, name in ((0.5, "p50"), (0.9, "p90")):
        b.add(ts(
            f"Time to action {name}",
            "Start → stop of met clocks (e.g. MQL → first contact attempt for speed_to_lead), over the last hour.",
            [(
                f"histogram_quantile({q}, sum by (le, sla, team) (rate(leadflow_sla_time_to_action_seconds_bucket{{{sel}}}[1h])))",
                "{{sla}} / {{team}}",
            )],
            unit="s",
            min_=0,
        ))

    b.row("Open clocks")
    b.add(ts(
        "Clocks open",
        "Clocks started and not yet decided.",
        [(f"sum by (sla, team) (leadflow_sla_clocks_open{{{sel}}})", "{{sla}} / {{team}}")],
    ))
    b.add(bars(
        "Clocks at risk now",
        "Open clocks past 75 % of their time: the leads to work first.",
        [(f"sum by (sla, team) (leadflow_sla_clocks_at_risk{{{sel}}})", "{{sla}} / {{team}}")],
        colours=thresholds((None, "green"), (1, "orange")),
    ))

    b.row("Volume against target")
    b.add(bars(
        "Weekly handoff volume, current ISO week",
        "Distinct leads assigned this week over the weekly target (marketing_weekly_volume).",
        [('sla_scope:leadflow_sla_volume_attainment:ratio{sla="marketing_weekly_volume"}', "week so far")],
        unit="percentunit",
        w=8,
        colours=thresholds((None, "orange"), (1, "green")),
    ))
    b.add(ts(
        "Weekly volume: count and target",
        "Current window's count and target of marketing_weekly_volume.",
        [
            ('max by (scope) (leadflow_sla_volume_count{sla="marketing_weekly_volume"})', "count"),
            ('max by (scope) (leadflow_sla_volume_target{sla="marketing_weekly_volume"})', "target"),
        ],
        w=16,
    ))
    b.add(bars(
        "Monthly leads per rep, current month",
        "Each owner's distinct leads this month over the monthly target (rep_monthly_volume).",
        [('sort(sla_scope:leadflow_sla_volume_attainment:ratio{sla="rep_monthly_volume"})', "{{scope}}")],
        unit="percentunit",
        w=12,
        h=10,
        colours=thresholds((None, "orange"), (1, "green")),
    ))
    b.add(table_panel(
        "Volume windows: count and target",
        "Current window of each volume SLA and scope.",
        [
            ("max by (sla, scope) (leadflow_sla_volume_count)", "count"),
            ("max by (sla, scope) (leadflow_sla_volume_target)", "target"),
        ],
        w=12,
        h=10,
    ))
    b.add(ts(
        "Volume windows closed below target",
        "Volume windows and pace checkpoints judged below target (any volume SLA), per day.",
        [(
            'sum by (sla, team) (increase(leadflow_sla_window_breaches_total[1d]))',
            "{{sla}} / {{team}}",
        )],
        w=24,
        h=6,
    ))
    return b.build()


# --------------------------------------------------------------------------- Pipeline health


UP_MAPPINGS = [
    dm.ValueMap(options={
        "0": dm.ValueMappingResult(text="DOWN", color="red", index=0),
        "1": dm.ValueMappingResult(text="UP", color="green", index=1),
    })
]


def pipeline_health() -> dm.Dashboard:
    rate = "$__rate_interval"
    b = Board(
        "leadflow-pipeline-health",
        "Pipeline health",
        "ingest → lifecycle → sla_monitor: availability, throughput, consumer lag, batches, dead letters and errors.",
        "now-6h",
        ["pipeline"],
    )

    b.row("Services")
    b.add(stat_panel(
        "Service up",
        "Prometheus can scrape the service's /metrics.",
        [('up{job=~"leadflow-.+"}', "{{job}}")],
        w=12,
        h=4,
        colours=thresholds((None, "red"), (1, "green")),
        mappings=UP_MAPPINGS,
    ))
    b.add(stat_panel(
        "Seconds since the SLA timer last ran",
        "Pages (LeadflowSlaTimerNotRunning) above 60 s.",
        [("time() - max(leadflow_sla_timer_last_run_timestamp_seconds)", "timer")],
        unit="s",
        w=6,
        h=4,
        colours=thresholds((None, "green"), (30, "orange"), (60, "red")),
    ))
    b.add(stat_panel(
        "Alerts firing",
        "leadflow alerts firing now, by severity.",
        [('sum by (severity) (ALERTS{alertstate="firing", alertname=~"Leadflow.+"})', "{{severity}}")],
        w=6,
        h=4,
        colours=thresholds((None, "green"), (1, "red")),
    ))

    b.row("Throughput")
    b.add(ts(
        "Ingest: accepted and refused events/s",
        "Valid envelopes published and invalid ones refused, by entry point (http, kafka).",
        [
            (f"sum by (via) (rate(leadflow_ingest_events_accepted_total[{rate}]))", "accepted {{via}}"),
            (f"sum by (via) (rate(leadflow_ingest_events_refused_total[{rate}]))", "refused {{via}}"),
        ],
        unit="reqps",
        w=8,
    ))
    b.add(ts(
        "Ingest: refused events/s by source and field",
        "Which upstream sends what wrong (field = the contract field, or json).",
        [(f"sum by (source, field) (rate(leadflow_ingest_events_refused_total[{rate}]))", "{{source}} {{field}}")],
        unit="reqps",
        w=8,
    ))
    b.add(ts(
        "Records consumed/s by service and topic",
        "leadflow_consumer_records_total of every Kafka consumer.",
        [(f"sum by (service, topic) (rate(leadflow_consumer_records_total[{rate}]))", "{{service}} ← {{topic}}")],
        unit="reqps",
        w=8,
    ))
    b.add(ts(
        "Lifecycle: events applied/s by type",
        "Events applied to a lead's history (moved the stage or not).",
        [(f"sum by (type) (rate(leadflow_lifecycle_events_applied_total[{rate}]))", "{{type}}")],
        unit="reqps",
        w=8,
    ))
    b.add(ts(
        "Lifecycle: ignored and duplicate events/s",
        "Ignored (backward, final, not_allowed) and repeated event ids.",
        [
            (f"sum by (reason) (rate(leadflow_lifecycle_events_ignored_total[{rate}]))", "ignored {{reason}}"),
            (f"sum(rate(leadflow_lifecycle_duplicates_total[{rate}]))", "duplicates"),
        ],
        unit="reqps",
        w=8,
    ))
    b.add(ts(
        "Ingest HTTP latency p50 / p99",
        "POST /v1/events and other routes.",
        [
            (f"histogram_quantile(0.5, sum by (le, route) (rate(leadflow_ingest_request_duration_seconds_bucket[{rate}])))", "p50 {{route}}"),
            (f"histogram_quantile(0.99, sum by (le, route) (rate(leadflow_ingest_request_duration_seconds_bucket[{rate}])))", "p99 {{route}}"),
        ],
        unit="s",
        w=8,
    ))
    b.add(ts(
        "Ingest HTTP requests/s by status",
        "4xx are refused events; 5xx are ingest failures.",
        [(f"sum by (route, status) (rate(leadflow_ingest_request_duration_seconds_count[{rate}]))", "{{route}} {{status}}")],
        unit="reqps",
        w=8,
    ))

    b.row("Consumer lag")
    b.add(ts(
        "Lag by service and topic",
        "Records behind, summed over partitions. Pages (LeadflowConsumerLagGrowing) above 500 and growing for 10 minutes.",
        [("sum by (service, topic) (leadflow_consumer_lag)", "{{service}} ← {{topic}}")],
        w=12,
    ))
    b.add(ts(
        "Lag by partition",
        "One stuck partition shows here first.",
        [("max by (service, topic, partition) (leadflow_consumer_lag)", "{{service}} ← {{topic}}[{{partition}}]")],
        w=12,
    ))

    b.row("Lifecycle batches")
    b.add(ts(
        "Batch size p50 / p90 / mean",
        "Records per consumed batch.",
        [
            (f"histogram_quantile(0.5, sum by (le) (rate(leadflow_lifecycle_batch_size_bucket[{rate}])))", "p50"),
            (f"histogram_quantile(0.9, sum by (le) (rate(leadflow_lifecycle_batch_size_bucket[{rate}])))", "p90"),
            (f"sum(rate(leadflow_lifecycle_batch_size_sum[{rate}])) / sum(rate(leadflow_lifecycle_batch_size_count[{rate}]))", "mean"),
        ],
        w=8,
    ))
    b.add(ts(
        "Batch duration p50 / p99",
        "Apply + commit of one batch (Postgres and publish).",
        [
            (f"histogram_quantile(0.5, sum by (le) (rate(leadflow_lifecycle_batch_duration_seconds_bucket[{rate}])))", "p50"),
            (f"histogram_quantile(0.99, sum by (le) (rate(leadflow_lifecycle_batch_duration_seconds_bucket[{rate}])))", "p99"),
        ],
        unit="s",
        w=8,
    ))
    b.add(ts(
        "Batches and Kafka transactions/s",
        "Consumed batches per second, and Kafka transactions committed to leadflow.lifecycle "
        "(one per partition and batch, fewer when the broker is slow and batches merge).",
        [
            (f"sum(rate(leadflow_lifecycle_batch_size_count[{rate}]))", "batches"),
            (f"sum(rate(leadflow_lifecycle_transactions_total[{rate}]))", "Kafka transactions"),
        ],
        unit="reqps",
        w=8,
    ))

    b.row("Dead letters and errors")
    b.add(ts(
        "Dead letters per 5 minutes by field",
        "Records written to leadflow.dlq (ticket: LeadflowDeadLettersGrowing).",
        [("sum by (field) (increase(leadflow_ingest_dlq_records_total[5m]))", "{{field}}")],
        w=8,
    ))
    b.add(bars(
        "Dead letters by field (selected range)",
        "Which contract fields upstream gets wrong most.",
        [("sort_desc(sum by (field) (increase(leadflow_ingest_dlq_records_total[$__range])))", "{{field}}")],
        w=8,
    ))
    b.add(ts(
        "Errors/s by service and kind",
        "Handled errors: kafka, postgres, decode, publish, timer, internal.",
        [(f"sum by (service, kind) (rate(leadflow_errors_total[{rate}]))", "{{service}} {{kind}}")],
        unit="reqps",
        w=8,
    ))
    return b.build()


# --------------------------------------------------------------------------- output

DASHBOARDS: dict[str, Callable[[], dm.Dashboard]] = {
    "lead-funnel.json": lead_funnel,
    "sla-attainment.json": sla_attainment,
    "pipeline-health.json": pipeline_health,
}


def _clean(obj):
    """Plain JSON for Grafana: panels without options get ``{}`` rather than ``null``."""
    if isinstance(obj, dict):
        return {k: ({} if k == "options" and v is None else _clean(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def dashboard_models() -> dict[str, dict]:
    """filename → the dashboard as a JSON-ready dict."""
    return {name: _clean(json.loads(json.dumps(build(), cls=JSONEncoder))) for name, build in DASHBOARDS.items()}


def render_all() -> dict[str, str]:
    """filename → the exact JSON text that is committed."""
    return {name: json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n" for name, model in dashboard_models().items()}


def write_all(out_dir: Path = DASHBOARD_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(out_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Names of dashboard files that are missing or differ from what this module generates."""
    stale = []
    for name, text in render_all().items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # dashboard uid
    panel: str  # panel title
    ref_id: str
    expr: str  # as Grafana sends it, with $variables
    instant: bool


def _panels(panels: list[dict]) -> Iterable[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])  # collapsed rows keep their panels inside


def panel_queries(models: Mapping[str, dict] | None = None) -> list[PanelQuery]:
    """Every PromQL expression of every panel of every dashboard."""
    models = dashboard_models() if models is None else models
    out = []
    for model in models.values():
        for panel in _panels(model.get("panels") or []):
            for target in panel.get("targets") or []:
                out.append(PanelQuery(model["uid"], panel["title"], target["refId"], target["expr"], bool(target.get("instant"))))
    return out


def variable_queries(models: Mapping[str, dict] | None = None) -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, Grafana query such as label_values(metric, label))."""
    models = dashboard_models() if models is None else models
    return [
        (model["uid"], var["name"], var["query"])
        for model in models.values()
        for var in (model.get("templating") or {}).get("list", [])
    ]


_VARIABLE = re.compile(r"\$(__range|__rate_interval|__interval|[A-Za-z_][A-Za-z0-9_]*)")


def resolve_expr(
    expr: str,
    *,
    range_: str = "1h",
    rate_interval: str = "1m",
    variables: Mapping[str, str] | None = None,
) -> str:
    """``expr`` with Grafana's variables replaced, ready for Prometheus' /api/v1/query.

    Dashboard variables default to ``.*`` (the "All" value, since every variable is used as a
    regex matcher); ``$__range`` becomes ``range_``; ``$__rate_interval`` and ``$__interval``
    become ``rate_interval`` (at a 5 s scrape interval, Grafana's own minimum is 20 s).
    """
    variables = dict(variables or {})

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "__range":
            return range_
        if name in ("__rate_interval", "__interval"):
            return rate_interval
        return variables.get(name, ".*")

    return _VARIABLE.sub(sub, expr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the leadflow Grafana dashboards.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is out of date")
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="output directory")
    parser.add_argument("--list-queries", action="store_true", help="print every panel's PromQL, one per line")
    args = parser.parse_args(argv)
    if args.list_queries:
        for q in panel_queries():
            print(f"{q.dashboard}\t{q.panel}\t{q.ref_id}\t{q.expr}")
        return 0
    if args.check:
        stale = stale_files(args.out)
        for name in stale:
            print(f"{args.out / name} is out of date: run python -m deploy.grafana.generate", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
