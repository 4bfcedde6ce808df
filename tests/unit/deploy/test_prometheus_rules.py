"""Prometheus and Alertmanager configuration: promtool/amtool checks, rule unit tests,
alert metadata, runbooks, and routing/inhibition on a real Alertmanager."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROM_DIR = ROOT / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
PROMTOOL_TESTS = sorted((ROOT / "tests" / "prometheus").glob("*.yml"))
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
METRICS_DOC = ROOT / "docs" / "metrics.md"

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian: prometheus, prometheus-alertmanager
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"  # Debian: prometheus, prometheus-alertmanager
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"  # Debian: prometheus, prometheus-alertmanager

SLA_ALERTS = {
    "LeadflowSpeedToLeadBreach",
    "LeadflowSlaBudgetBurnFast",
    "LeadflowSlaBudgetBurnSlow",
    "LeadflowSlaVolumeShortfall",
}
PIPELINE_DOWN_ALERTS = {"LeadflowServiceDown", "LeadflowConsumerLagGrowing", "LeadflowSlaTimerNotRunning"}


def run(*cmd: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def load_rules() -> list[tuple[Path, dict]]:
    out = []
    for path in RULE_FILES:
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                out.append((path, rule))
    return out


ALL_RULES = load_rules()
ALERTS = {rule["alert"]: rule for _, rule in ALL_RULES if "alert" in rule}
RECORDS = sorted({rule["record"] for _, rule in ALL_RULES if "record" in rule})
ALERT_FILES = {rule["alert"]: path.name for path, rule in ALL_RULES if "alert" in rule}


def load_render():
    spec = importlib.util.spec_from_file_location("leadflow_am_render", ROOT / "deploy" / "alertmanager" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_render()


# --------------------------------------------------------------------------- promtool / amtool


def test_promtool_check_config():
    proc = run(PROMTOOL, "check", "config", str(PROM_CONFIG.relative_to(ROOT)))
    assert_ok(proc)
    # every rule file was found through rule_files: rules/*.yml
    for path in RULE_FILES:
        assert f"rules/{path.name}" in proc.stdout + proc.stderr


def test_promtool_test_rules():
    assert PROMTOOL_TESTS, "no promtool test files in tests/prometheus/"
    proc = run(PROMTOOL, "test", "rules", *[str(p.relative_to(ROOT)) for p in PROMTOOL_TESTS], timeout=300)
    assert_ok(proc)
    assert "FAILED" not in proc.stdout + proc.stderr


def test_amtool_check_config():
    proc = run(AMTOOL, "check-config", str(AM_CONFIG.relative_to(ROOT)))
    assert_ok(proc)
    assert "SUCCESS" in proc.stdout
    assert "3 inhibit rules" in proc.stdout
    assert "2 receivers" in proc.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "alertname=LeadflowSpeedToLeadBreach", "sla=speed_to_lead", "team=emea"], "oncall"),
        (["severity=page", "alertname=LeadflowServiceDown", "job=leadflow-ingest"], "oncall"),
        (["severity=ticket", "alertname=LeadflowSlaBudgetBurnSlow", "sla=sales_acceptance", "team=emea"], "tickets"),
        (["alertname=SomethingWithoutSeverity"], "tickets"),
    ],
)
def test_alertmanager_routes_by_severity(labels, receiver):
    proc = run(AMTOOL, "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels)
    assert_ok(proc)
    assert proc.stdout.split() == [receiver]


def test_every_severity_used_by_an_alert_has_a_route():
    config = yaml.safe_load(AM_CONFIG.read_text())
    routed = {m for route in config["route"]["routes"] for m in route["matchers"]}
    for name, rule in ALERTS.items():
        assert f'severity="{rule["labels"]["severity"]}"' in routed, name
    assert config["route"]["group_by"] == ["alertname", "sla", "team"]
    page = next(r for r in config["route"]["routes"] if r["receiver"] == "oncall")
    assert page["group_wait"] == "5s"


def test_inhibition_covers_every_sla_alert_and_only_from_pipeline_down_alerts():
    config = yaml.safe_load(AM_CONFIG.read_text())
    rule = config["inhibit_rules"][0]
    (source,) = rule["source_matchers"]
    (target,) = rule["target_matchers"]
    source_names = set(re.fullmatch(r'alertname=~"(.*)"', source).group(1).split("|"))
    target_names = set(re.fullmatch(r'alertname=~"(.*)"', target).group(1).split("|"))
    assert source_names == PIPELINE_DOWN_ALERTS
    assert target_names == SLA_ALERTS
    # every name in the inhibit rules is a real alert
    for r in config["inhibit_rules"]:
        for m in r["source_matchers"] + r["target_matchers"]:
            for name in re.fullmatch(r'alertname=~?"(.*)"', m).group(1).split("|"):
                assert name in ALERTS, name


# --------------------------------------------------------------------------- alert metadata


def test_alert_names_are_the_documented_set():
    assert set(ALERTS) == SLA_ALERTS | PIPELINE_DOWN_ALERTS | {
        "LeadflowDeadLettersGrowing",
        "LeadflowIngestRefusingMoreThanAccepting",
    }
    assert {n for n, f in ALERT_FILES.items() if f == "sla_alerts.yml"} == SLA_ALERTS


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_for_severity_summary_and_runbook(name):
    rule = ALERTS[name]
    assert "for" in rule, f"{name} has no `for`"
    assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule["for"]
    assert rule.get("labels", {}).get("severity") in {"page", "ticket"}, f"{name}: severity"
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip(), f"{name}: no summary"
    assert annotations.get("runbook_url") == f"docs/runbooks/{name}.md"
    runbook = ROOT / annotations["runbook_url"]
    assert runbook.is_file(), f"missing runbook {runbook}"
    text = runbook.read_text()
    assert text.startswith(f"# {name}")
    for section in ("**What it means.**", "**What to check.**", "**What to do.**"):
        assert section in text, f"{runbook.name} lacks {section}"


@pytest.mark.parametrize("name", sorted(SLA_ALERTS))
def test_sla_alerts_name_sla_and_team(name):
    rule = ALERTS[name]
    summary = rule["annotations"]["summary"]
    assert "{{ $labels.sla }}" in summary and "{{ $labels.team }}" in summary
    # the labels survive aggregation: every aggregation keeps sla and team
    expr = rule["expr"]
    for by in re.findall(r"by \(([^)]*)\)", expr):
        assert {"sla", "team"} <= {x.strip() for x in by.split(",")}, by


def test_speed_to_lead_breach_pages():
    rule = ALERTS["LeadflowSpeedToLeadBreach"]
    assert rule["labels"]["severity"] == "page"
    # only breaches declared on time page: a backlog or a backfill of history pages nobody
    assert 'leadflow_sla_breaches_total{declared="on_time",sla="speed_to_lead"}' in rule["expr"]


def test_burn_rate_alerts_use_the_objective_and_the_workbook_windows():
    fast = ALERTS["LeadflowSlaBudgetBurnFast"]
    slow = ALERTS["LeadflowSlaBudgetBurnSlow"]
    assert fast["labels"]["severity"] == "page" and slow["labels"]["severity"] == "ticket"
    for rule, pairs in (
        (fast, [("1h", "5m", "14.4 * "), ("6h", "30m", "6 * ")]),
        (slow, [("1d", "2h", "3 * "), ("3d", "6h", "1 * ")]),
    ):
        for long_w, short_w, factor in pairs:
            for window in (long_w, short_w):
                line = f"(1 - sla_team:leadflow_sla_attainment:ratio{window}) > on(sla) group_left() ({factor}(1 - leadflow:sla_objective))"
                assert line in rule["expr"], line
    # the objective is defined in exactly one file
    defining = {p.name for p, r in ALL_RULES if r.get("record", "").startswith("leadflow:sla_objective")}
    assert defining == {"objectives.yml"}


def test_runbook_index_lists_every_alert_and_no_orphans():
    index = (RUNBOOKS / "README.md").read_text()
    for name in ALERTS:
        assert f"[{name}]({name}.md)" in index
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(ALERTS)


# --------------------------------------------------------------------------- test coverage of rules


def promtool_tests() -> list[dict]:
    tests = []
    for path in PROMTOOL_TESTS:
        tests.extend(yaml.safe_load(path.read_text())["tests"])
    return tests


@pytest.mark.parametrize("record", RECORDS)
def test_every_recording_rule_has_a_promtool_test(record):
    tested = [
        case
        for test in promtool_tests()
        for case in test.get("promql_expr_test", [])
        if re.search(rf"(?<![\w:]){re.escape(record)}(?![\w:])", case["expr"])
    ]
    assert tested, f"recording rule {record} has no promql_expr_test"
    assert any(case["exp_samples"] for case in tested), f"{record} is never tested with a value"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_has_firing_and_silent_promtool_tests(name):
    cases = [case for test in promtool_tests() for case in test.get("alert_rule_test", []) if case["alertname"] == name]
    assert any(case.get("exp_alerts") for case in cases), f"{name}: no test where it fires"
    assert any(not case.get("exp_alerts") for case in cases), f"{name}: no test where it stays silent"
    for case in cases:
        for alert in case.get("exp_alerts") or []:
            assert alert["exp_labels"]["severity"] == ALERTS[name]["labels"]["severity"]
            assert alert.get("exp_annotations", {}).get("runbook_url") == f"docs/runbooks/{name}.md"


def test_promtool_tests_load_every_rule_file():
    loaded = set()
    for path in PROMTOOL_TESTS:
        for rf in yaml.safe_load(path.read_text())["rule_files"]:
            loaded.add((path.parent / rf).resolve())
    assert loaded == {p.resolve() for p in RULE_FILES}


# --------------------------------------------------------------------------- metrics doc consistency


def documented_metric_names() -> set[str]:
    return set(re.findall(r"^\| `(leadflow_[a-z_]+)`", METRICS_DOC.read_text(), flags=re.MULTILINE))


def test_every_metric_used_by_a_rule_is_documented():
    documented = documented_metric_names()
    used = set()
    for _, rule in ALL_RULES:
        used |= set(re.findall(r"(?<![\w:])(leadflow_[a-z_]+)", rule["expr"]))
    missing = used - documented
    assert not missing, f"rules use metrics that docs/metrics.md does not define: {sorted(missing)}"


def test_the_brief_metric_set_is_documented():
    expected = {
        "leadflow_ingest_events_accepted_total",
        "leadflow_ingest_events_refused_total",
        "leadflow_ingest_dlq_records_total",
        "leadflow_ingest_request_duration_seconds",
        "leadflow_lifecycle_events_applied_total",
        "leadflow_lifecycle_events_ignored_total",
        "leadflow_lifecycle_duplicates_total",
        "leadflow_lifecycle_transitions_total",
        "leadflow_lifecycle_rejections_total",
        "leadflow_lifecycle_batch_size",
        "leadflow_lifecycle_batch_duration_seconds",
        "leadflow_lifecycle_transactions_total",
        "leadflow_lifecycle_leads",
        "leadflow_consumer_lag",
        "leadflow_consumer_records_total",
        "leadflow_errors_total",
        "leadflow_sla_outcomes_total",
        "leadflow_sla_breaches_total",
        "leadflow_sla_window_breaches_total",
        "leadflow_sla_clocks_open",
        "leadflow_sla_clocks_at_risk",
        "leadflow_sla_time_to_action_seconds",
        "leadflow_sla_volume_count",
        "leadflow_sla_volume_target",
        "leadflow_sla_corrections_total",
        "leadflow_sla_timer_last_run_timestamp_seconds",
    }
    assert documented_metric_names() == expected


def test_every_recording_rule_is_documented():
    doc = METRICS_DOC.read_text()
    for record in RECORDS:
        stem, _, op = record.rpartition(":")
        # documented either whole or as `name:op7d` / `op30d` pairs
        assert record in doc or f"`{stem}:" in doc, record


# --------------------------------------------------------------------------- render.py


def test_render_puts_the_env_urls_into_a_valid_private_config(tmp_path):
    out = tmp_path / "data" / "alertmanager" / "alertmanager.yml"
    env = {
        "LEADFLOW_ONCALL_WEBHOOK_URL": 'https://hooks.example.test/oncall?token=a"b&x=1',
        "LEADFLOW_TICKET_WEBHOOK_URL": "http://127.0.0.1:18080/tickets",
    }
    render.write(out, env=env)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    config = yaml.safe_load(out.read_text())
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in config["receivers"]}
    assert urls == {"oncall": env["LEADFLOW_ONCALL_WEBHOOK_URL"], "tickets": env["LEADFLOW_TICKET_WEBHOOK_URL"]}
    assert_ok(run(AMTOOL, "check-config", str(out)))


def test_render_keeps_placeholders_when_unset(tmp_path, capsys):
    out = render.write(tmp_path / "am.yml", env={})
    assert out.read_text() == AM_CONFIG.read_text()
    assert "LEADFLOW_ONCALL_WEBHOOK_URL is not set" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["ftp://x.test/h", "hooks.example.test/path", "http://x.test/a b", "http://x.test/\nfoo: 1"])
def test_render_refuses_bad_urls_without_echoing_them(tmp_path, bad):
    with pytest.raises(render.RenderError) as err:
        render.write(tmp_path / "am.yml", env={"LEADFLOW_ONCALL_WEBHOOK_URL": bad})
    assert "LEADFLOW_ONCALL_WEBHOOK_URL" in str(err.value)
    assert bad not in str(err.value)
    assert not (tmp_path / "am.yml").exists()


def test_render_cli_exit_codes(tmp_path):
    script = ROOT / "deploy" / "alertmanager" / "render.py"
    env = dict(os.environ, LEADFLOW_ONCALL_WEBHOOK_URL="http://127.0.0.1:1/x", LEADFLOW_TICKET_WEBHOOK_URL="http://127.0.0.1:1/y")
    ok = subprocess.run(["python3", str(script), "--out", str(tmp_path / "a.yml")], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "127.0.0.1:1/x" not in ok.stdout + ok.stderr
    env["LEADFLOW_TICKET_WEBHOOK_URL"] = "not a url"
    bad = subprocess.run(["python3", str(script), "--out", str(tmp_path / "b.yml")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "LEADFLOW_TICKET_WEBHOOK_URL" in bad.stderr


# --------------------------------------------------------------------------- a real Alertmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """A webhook receiver on loopback that records every notification by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with sink.lock:
                    sink.received.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alerts(self, path: str) -> list[dict]:
        with self.lock:
            return [a for p, body in self.received if p == path for a in body["alerts"]]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_json(url: str, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@pytest.fixture
def alertmanager(tmp_path):
    with Sink() as sink:
        config = render.write(
            tmp_path / "alertmanager.yml",
            env={
                "LEADFLOW_ONCALL_WEBHOOK_URL": f"http://127.0.0.1:{sink.port}/oncall",
                "LEADFLOW_TICKET_WEBHOOK_URL": f"http://127.0.0.1:{sink.port}/tickets",
            },
        )
        port = free_port()
        log = open(tmp_path / "alertmanager.log", "w")
        proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:

            def ready():
                try:
                    return urllib.request.urlopen(f"{base}/-/ready", timeout=1).status == 200
                except OSError:
                    assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
                    return False

            wait_for(ready, 20, "alertmanager to be ready")
            yield base, sink
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def post_alert(base: str, labels: dict, summary: str = "test") -> None:
    now = datetime.now(timezone.utc)
    http_json(
        f"{base}/api/v2/alerts",
        [
            {
                "labels": labels,
                "annotations": {"summary": summary},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=5)).isoformat(),
            }
        ],
    )


def test_alertmanager_delivers_a_page_and_inhibits_sla_alerts_while_the_pipeline_is_down(alertmanager):
    base, sink = alertmanager

    # 1. a speed-to-lead breach alone reaches on-call within seconds (group_wait 5s)
    breach = {"alertname": "LeadflowSpeedToLeadBreach", "severity": "page", "sla": "speed_to_lead", "team": "emea"}
    post_alert(base, breach)
    delivered = wait_for(lambda: sink.alerts("/oncall"), 20, "the breach page")
    assert delivered[0]["labels"] == breach
    assert delivered[0]["status"] == "firing"
    assert sink.alerts("/tickets") == []

    # 2. with a pipeline-down alert firing, a new SLA alert is inhibited and never sent
    down = {"alertname": "LeadflowServiceDown", "severity": "page", "job": "leadflow-lifecycle", "instance": "127.0.0.1:9101"}
    post_alert(base, down)
    wait_for(lambda: any(a["labels"] == down for a in sink.alerts("/oncall")), 20, "the service-down page")
    masked = {"alertname": "LeadflowSpeedToLeadBreach", "severity": "page", "sla": "speed_to_lead", "team": "apac"}
    post_alert(base, masked)

    def inhibited():
        alerts = http_json(f"{base}/api/v2/alerts?inhibited=true")
        return [a for a in alerts if a["labels"] == masked and a["status"]["inhibitedBy"]]

    wait_for(inhibited, 10, "the apac breach to be inhibited")
    time.sleep(7)  # longer than the page group_wait: a notification would have gone out
    assert not any(a["labels"].get("team") == "apac" for a in sink.alerts("/oncall"))
