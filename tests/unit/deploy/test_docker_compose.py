"""docker-compose.yml cannot run here (no Docker engine); this checks that it agrees with deploy/
and with the local stack: the same services, ports and config files."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from services.cli import COMMANDS
from services.common.config import StackPorts

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PORTS = StackPorts()


def _flat(value) -> str:
    return yaml.safe_dump(value)


def test_every_component_is_there():
    assert {"kafka", "postgres", "prometheus", "alertmanager", "grafana", "ingest", "lifecycle", "sla-monitor"} <= set(SERVICES)


def test_all_containers_share_the_host_network_like_the_local_stack():
    assert {name for name, svc in SERVICES.items() if svc.get("network_mode") != "host"} == set()


def test_ports_agree_with_the_local_stack_defaults():
    kafka_env = SERVICES["kafka"]["environment"]
    assert kafka_env["KAFKA_LISTENERS"] == f"PLAINTEXT://127.0.0.1:{PORTS.kafka},CONTROLLER://127.0.0.1:{PORTS.kafka_controller}"
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://127.0.0.1:{PORTS.kafka}"
    assert f"-p {PORTS.postgres}" in " ".join(SERVICES["postgres"]["command"])
    assert f"--web.listen-address=127.0.0.1:{PORTS.prometheus}" in SERVICES["prometheus"]["command"]
    assert f"--web.listen-address=127.0.0.1:{PORTS.alertmanager}" in SERVICES["alertmanager"]["command"]


def test_prometheus_scrapes_what_compose_runs():
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]}
    assert targets["leadflow-ingest"] == f"127.0.0.1:{SERVICES['ingest']['environment']['LEADFLOW_INGEST_PORT']}"
    assert targets["leadflow-lifecycle"] == f"127.0.0.1:{SERVICES['lifecycle']['environment']['LEADFLOW_LIFECYCLE_METRICS_PORT']}"
    assert targets["leadflow-sla-monitor"] == f"127.0.0.1:{SERVICES['sla-monitor']['environment']['LEADFLOW_SLA_METRICS_PORT']}"
    assert targets["prometheus"] == f"127.0.0.1:{PORTS.prometheus}"
    alertmanager = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert alertmanager == f"127.0.0.1:{PORTS.alertmanager}"


def test_mounted_config_files_exist():
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
    assert (ROOT / "Dockerfile").exists()


def test_grafana_reads_the_provisioned_dashboards_and_datasource():
    grafana = SERVICES["grafana"]
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/leadflow.yml").read_text())
    dash_path = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{dash_path}:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == f"http://127.0.0.1:{PORTS.prometheus}"
    assert grafana["environment"]["GF_SERVER_HTTP_PORT"] == "3000"


def test_service_commands_exist_in_the_cli():
    for name in ("ingest", "lifecycle", "sla-monitor", "topics"):
        command = SERVICES[name]["command"][0]
        assert command in COMMANDS, f"compose runs `leadflow {command}`, which the CLI does not have"


def test_alertmanager_uses_the_rendered_config():
    render = SERVICES["alertmanager-config"]
    assert "/app/deploy/alertmanager/render.py" in render["entrypoint"]
    assert "--config.file=/rendered/alertmanager.yml" in SERVICES["alertmanager"]["command"]
    assert re.search(r"LEADFLOW_ONCALL_WEBHOOK_URL", _flat(render["environment"]))
