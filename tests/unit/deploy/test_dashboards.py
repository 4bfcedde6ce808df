"""Grafana dashboards as code: committed JSON = generated JSON, layout sanity, provisioning,
and every panel query evaluated by promtool against synthetic series of every metric."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
RULES = ROOT / "deploy" / "prometheus" / "rules"
METRICS_DOC = ROOT / "docs" / "metrics.md"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian: prometheus, prometheus-alertmanager


def load_generate():
    name = "leadflow_grafana_generate"
    spec = importlib.util.spec_from_file_location(name, GRAFANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = load_generate()
MODELS = gen.dashboard_models()
QUERIES = gen.panel_queries()


def all_panels(model: dict) -> list[dict]:
    out = []
    for panel in model["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


def documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `(leadflow_[a-z_]+)`", METRICS_DOC.read_text(), flags=re.MULTILINE))


def base_metric(name: str) -> str:
    """The documented metric a series name belongs to (histograms expose _bucket/_sum/_count)."""
    if name in documented_metrics():
        return name
    return re.sub(r"_(bucket|sum|count)$", "", name)


def recorded_names() -> set[str]:
    names = set()
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


# --------------------------------------------------------------------------- code == JSON


def test_committed_json_is_what_the_code_generates():
    stale = gen.stale_files()
    assert stale == [], f"out of date: {stale}; run .venv/bin/python -m deploy.grafana.generate"
    committed = sorted(p.name for p in (GRAFANA / "dashboards").glob("*.json"))
    assert committed == sorted(gen.DASHBOARDS), "a dashboard JSON file without generator code (or the reverse)"


def test_check_mode_detects_a_hand_edit(tmp_path):
    cmd = [sys.executable, "-m", "deploy.grafana.generate", "--check"]
    ok = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr

    written = subprocess.run(cmd[:-1] + ["--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    edited = tmp_path / "pipeline-health.json"
    edited.write_text(edited.read_text().replace("Pipeline health", "Pipeline health (edited)"))
    bad = subprocess.run(cmd + ["--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "pipeline-health.json is out of date" in bad.stderr


def test_generation_is_deterministic():
    assert gen.render_all() == gen.render_all()


# --------------------------------------------------------------------------- structure


def test_the_three_dashboards():
    titles = {m["uid"]: m["title"] for m in MODELS.values()}
    assert titles == {
        "leadflow-lead-funnel": "Lead funnel",
        "leadflow-sla-attainment": "SLA attainment",
        "leadflow-pipeline-health": "Pipeline health",
    }
    for model in MODELS.values():
        assert "leadflow" in model["tags"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layout_ids_datasource_and_targets(name):
    model = MODELS[name]
    panels = all_panels(model)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "leadflow-prometheus"}, p["title"]
        assert p["title"] and p.get("description"), p["title"]
        assert p["options"] is not None and isinstance(p["options"], dict)
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(refs), p["title"]
        assert all(t["expr"].strip() for t in p["targets"]), p["title"]


def test_variables_are_multi_value_regex_matchers_on_documented_metrics():
    documented = documented_metrics()
    variables = gen.variable_queries()
    assert {(d, v) for d, v, _ in variables} == {
        ("leadflow-lead-funnel", "channel"),
        ("leadflow-lead-funnel", "segment"),
        ("leadflow-sla-attainment", "sla"),
        ("leadflow-sla-attainment", "team"),
    }
    for _, var, query in variables:
        metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", query).groups()
        assert metric in documented and label == var
    for model in MODELS.values():
        for var in model.get("templating", {}).get("list", []):
            assert var["multi"] and var["includeAll"] and var["allValue"] == ".*"
            assert var["datasource"]["uid"] == "leadflow-prometheus"
            # every use of the variable is a regex matcher
            for q in gen.panel_queries({"x": model}):
                for use in re.findall(rf"(\w+)(=~|=|!=)\"\${var['name']}\"", q.expr):
                    assert use == (var["name"], "=~"), q.expr


def panel_titles(uid: str) -> list[str]:
    return [q.panel for q in QUERIES if q.dashboard == uid]


@pytest.mark.parametrize(
    ("uid", "needles"),
    [
        ("leadflow-lead-funnel", ["Leads per stage", "MQL → SQL (7d)", "MQL → SQL (30d)", "MQL → customer (30d)",
                                  "by channel", "by segment", "Rejection reasons", "Handoffs vs weekly target"]),
        ("leadflow-sla-attainment", ["Attainment, last 7 days", "Attainment, last 30 days", "Breaches per hour",
                                     "Time to action p50", "Time to action p90", "Clocks at risk",
                                     "Weekly handoff volume", "Monthly leads per rep"]),
        ("leadflow-pipeline-health", ["Service up", "Records consumed/s", "Lag by service and topic",
                                      "Batch size", "Dead letters", "Errors/s"]),
    ],
)
def test_dashboards_have_the_required_panels(uid, needles):
    titles = panel_titles(uid)
    for needle in needles:
        assert any(needle in t for t in titles), f"{uid}: no panel about {needle!r}"


def test_panel_queries_lists_every_target():
    n_targets = sum(len(p.get("targets") or []) for m in MODELS.values() for p in all_panels(m))
    assert len(QUERIES) == n_targets > 40
    assert {q.dashboard for q in QUERIES} == {m["uid"] for m in MODELS.values()}
    # the SLA panels break down by sla and team, the funnel panels filter by channel and segment
    for q in QUERIES:
        if q.dashboard == "leadflow-sla-attainment" and re.search(r"leadflow_sla_(outcomes|breaches|corrections|clocks|time_to)", q.expr):
            assert "sla" in q.expr and "team" in q.expr, q.expr


def test_resolve_expr():
    expr = 'sum by (sla) (increase(x{sla=~"$sla", team=~"$team"}[$__range])) / rate(y[$__rate_interval])'
    assert gen.resolve_expr(expr) == 'sum by (sla) (increase(x{sla=~".*", team=~".*"}[1h])) / rate(y[1m])'
    assert gen.resolve_expr(expr, range_="7d", rate_interval="20s", variables={"team": "emea"}) == (
        'sum by (sla) (increase(x{sla=~".*", team=~"emea"}[7d])) / rate(y[20s])'
    )
    for q in QUERIES:
        assert "$" not in gen.resolve_expr(q.expr)


# --------------------------------------------------------------------------- metrics


def referenced_names(expr: str) -> set[str]:
    # metric names and recording rules: identifiers followed by a selector, range, or not a function call
    names = set(re.findall(r"(?<![\w:\"$])((?:leadflow|[a-z_]+:leadflow)[\w:]*)", expr))
    return names


def test_dashboards_use_only_documented_metrics_and_existing_recording_rules():
    documented = documented_metrics()
    recorded = recorded_names()
    for q in QUERIES:
        for name in referenced_names(q.expr):
            assert name in recorded or base_metric(name) in documented, f"{q.panel}: unknown {name}"


def recording_exprs() -> dict[str, str]:
    exprs: dict[str, str] = {}
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for r in group["rules"]:
                if "record" in r:
                    exprs[r["record"]] = exprs.get(r["record"], "") + "\n" + r["expr"]
    return exprs


def test_every_documented_metric_is_on_a_dashboard():
    """Directly, or through a recording rule that a panel shows."""
    exprs = recording_exprs()
    todo = [name for q in QUERIES for name in referenced_names(q.expr)]
    shown: set[str] = set()
    while todo:
        name = todo.pop()
        if name in shown:
            continue
        shown.add(name)
        if name in exprs:
            todo.extend(referenced_names(exprs[name]))
    shown = {base_metric(n) for n in shown}
    missing = documented_metrics() - shown
    assert not missing, f"metrics on no dashboard: {sorted(missing)}"


def synthetic_series() -> list[dict]:
    """One or more series of every metric in docs/metrics.md, shaped as the services expose them."""
    ingest = 'job="leadflow-ingest",instance="127.0.0.1:8080"'
    life = 'job="leadflow-lifecycle",instance="127.0.0.1:9101"'
    sla = 'job="leadflow-sla-monitor",instance="127.0.0.1:9102"'
    n = "x1500"
    series: list[tuple[str, str]] = [
        (f'up{{{ingest}}}', f"1{n}"),
        (f'up{{{life}}}', f"1{n}"),
        (f'up{{{sla}}}', f"1{n}"),
        (f'leadflow_ingest_events_accepted_total{{{ingest},source="website",via="http"}}', f"0+10{n}"),
        (f'leadflow_ingest_events_refused_total{{{ingest},source="hubspot",via="kafka",field="payload.score"}}', f"0+1{n}"),
        (f'leadflow_ingest_dlq_records_total{{{ingest},field="payload.score"}}', f"0+1{n}"),
        (f'leadflow_lifecycle_events_applied_total{{{life},type="lead.assigned"}}', f"0+2{n}"),
        (f'leadflow_lifecycle_events_applied_total{{{life},type="lead.created"}}', f"0+5{n}"),
        (f'leadflow_lifecycle_events_ignored_total{{{life},reason="backward"}}', f"0+1{n}"),
        (f'leadflow_lifecycle_duplicates_total{{{life}}}', f"0+1{n}"),
        (f'leadflow_lifecycle_transactions_total{{{life}}}', f"0+5{n}"),
        (f'leadflow_lifecycle_rejections_total{{{life},reason="no_fit"}}', f"0+1{n}"),
        (f'leadflow_lifecycle_leads{{{life},stage="mql"}}', f"40{n}"),
        (f'leadflow_lifecycle_leads{{{life},stage="sql"}}', f"12{n}"),
        (f'leadflow_consumer_lag{{{life},service="lifecycle",topic="leadflow.events",partition="0"}}', f"3{n}"),
        (f'leadflow_consumer_records_total{{{life},service="lifecycle",topic="leadflow.events"}}', f"0+20{n}"),
        (f'leadflow_errors_total{{{life},service="lifecycle",kind="postgres"}}', f"0+1{n}"),
        (f'leadflow_sla_outcomes_total{{{sla},declared="on_time",sla="speed_to_lead",team="sales",outcome="met"}}', f"0+9{n}"),
        (f'leadflow_sla_outcomes_total{{{sla},declared="on_time",sla="speed_to_lead",team="sales",outcome="breached"}}', f"0+1{n}"),
        (f'leadflow_sla_breaches_total{{{sla},declared="on_time",sla="speed_to_lead",team="sales"}}', f"0+1{n}"),
        (f'leadflow_sla_breaches_total{{{sla},declared="on_time",sla="marketing_weekly_volume",team="marketing"}}', f"0+1{n}"),
        (f'leadflow_sla_window_breaches_total{{{sla},declared="on_time",sla="marketing_weekly_volume",team="marketing"}}', f"0+1{n}"),
        (f'leadflow_sla_corrections_total{{{sla},sla="speed_to_lead",team="sales",to="met"}}', f"0+1{n}"),
        (f'leadflow_sla_clocks_open{{{sla},sla="speed_to_lead",team="sales"}}', f"7{n}"),
        (f'leadflow_sla_clocks_at_risk{{{sla},sla="speed_to_lead",team="sales"}}', f"2{n}"),
        (f'leadflow_sla_volume_count{{{sla},sla="marketing_weekly_volume",scope="all"}}', f"20{n}"),
        (f'leadflow_sla_volume_target{{{sla},sla="marketing_weekly_volume",scope="all"}}', f"50{n}"),
        (f'leadflow_sla_volume_count{{{sla},sla="rep_monthly_volume",scope="rep-1"}}', f"90{n}"),
        (f'leadflow_sla_volume_target{{{sla},sla="rep_monthly_volume",scope="rep-1"}}', f"150{n}"),
        # the timer stopped at t=0: LeadflowSlaTimerNotRunning fires, so ALERTS has a series
        (f'leadflow_sla_timer_last_run_timestamp_seconds{{{sla}}}', f"0{n}"),
    ]
    for frm, to in (("none", "new"), ("iql", "mql"), ("mql", "sql"), ("opportunity", "customer"), ("mql", "rejected")):
        series.append((
            f'leadflow_lifecycle_transitions_total{{{life},from_stage="{frm}",to_stage="{to}",channel="website",segment="smb"}}',
            f"0+3{n}",
        ))
    histograms = [
        ("leadflow_ingest_request_duration_seconds", f'{ingest},route="/v1/events",status="202"', [0.005, 0.05, 0.5]),
        ("leadflow_lifecycle_batch_size", life, [1, 10, 100]),
        ("leadflow_lifecycle_batch_duration_seconds", life, [0.01, 0.1, 1]),
        ("leadflow_sla_time_to_action_seconds", f'{sla},sla="speed_to_lead",team="sales"', [300, 1800, 3600]),
    ]
    for name, labels, buckets in histograms:
        for i, le in enumerate([*map(str, buckets), "+Inf"]):
            series.append((f'{name}_bucket{{{labels},le="{le}"}}', f"0+{i + 1}{n}"))
        series.append((f"{name}_sum{{{labels}}}", f"0+10{n}"))
        series.append((f"{name}_count{{{labels}}}", f"0+4{n}"))
    return [{"series": s, "values": v} for s, v in series]


def test_synthetic_series_cover_every_documented_metric():
    names = {base_metric(s["series"].split("{")[0]) for s in synthetic_series()}
    assert documented_metrics() <= names


def test_every_panel_query_returns_data_under_promtool(tmp_path):
    """Each panel's PromQL (variables resolved to "All", $__range 1h, $__rate_interval 5m) is
    evaluated by promtool over a day of synthetic series with the real rule files loaded; each
    must parse and return at least one series."""
    cases = []
    for q in QUERIES:
        expr = gen.resolve_expr(q.expr, range_="1h", rate_interval="5m")
        cases.append({
            "expr": f"count({expr}) > bool 0",
            "eval_time": "1d",
            "exp_samples": [{"labels": "{}", "value": 1}],
        })
    test_file = {
        "rule_files": [str(p) for p in sorted(RULES.glob("*.yml"))],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": synthetic_series(), "promql_expr_test": cases}],
    }
    path = tmp_path / "dashboards_test.yml"
    path.write_text(yaml.safe_dump(test_file, sort_keys=False))
    proc = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"promtool:\n{proc.stdout}\n{proc.stderr}"


# --------------------------------------------------------------------------- provisioning


def test_datasource_provisioning():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = doc["datasources"]
    assert (ds["uid"], ds["type"], ds["url"]) == ("leadflow-prometheus", "prometheus", "http://127.0.0.1:19090")
    assert doc["apiVersion"] == 1


def test_dashboard_provisioning():
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "leadflow.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["folder"] == "leadflow"
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    assert doc["apiVersion"] == 1


def test_committed_json_is_valid_and_uses_the_provisioned_datasource():
    for path in (GRAFANA / "dashboards").glob("*.json"):
        model = json.loads(path.read_text())
        uids = {p["datasource"]["uid"] for p in all_panels(model) if p["type"] != "row"}
        assert uids == {"leadflow-prometheus"}, path.name
