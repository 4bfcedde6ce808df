"""Prometheus and Alertmanager from Debian's packages, with the configs in deploy/ rendered for
the ports and folders of this stack."""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from services.common.config import Secret, StackPorts, repo_root
from services.stack.process import (
    StackError, ensure_port_free, port_answers, read_pid, start_detached, stop_pid, tail, wait_until,
)

DEPLOY = repo_root() / "deploy"
INGEST_JOB = "leadflow-ingest"
APT_HINT = "apt-get install prometheus prometheus-alertmanager (as root)"


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    raise StackError(f"{names[0]}: not installed. Install it: {APT_HINT}.")


def _replace_ports(text: str, defaults: StackPorts, ports: StackPorts, service_ports: dict[int, int]) -> str:
    mapping = {defaults.prometheus: ports.prometheus, defaults.alertmanager: ports.alertmanager, **service_ports}
    for old, new in mapping.items():
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}").replace(f"localhost:{old}", f"127.0.0.1:{new}")
    return text


@dataclass
class PrometheusNode:
    home: Path
    port: int
    ports: StackPorts
    service_ports: dict[int, int] = field(default_factory=dict)   # default port -> actual port
    host: str = "127.0.0.1"
    ingest_key: Secret = field(default_factory=lambda: Secret(""))  # for ingest's /metrics outside dev mode

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "prometheus.pid"

    @property
    def ingest_key_file(self) -> Path:
        return self.home / "ingest-metrics.key"

    @property
    def log_file(self) -> Path:
        return self.home / "prometheus.log"

    def answers(self) -> bool:
        return port_answers(self.host, self.port)

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def render_config(self) -> Path:
        source = DEPLOY / "prometheus" / "prometheus.yml"
        text = _replace_ports(source.read_text(), StackPorts(), self.ports, self.service_ports)
        config = yaml.safe_load(text)
        # Rules stay in deploy/ (one copy, tested there); point at them by absolute path.
        rules_dir = DEPLOY / "prometheus"
        config["rule_files"] = [str(rules_dir / pattern) for pattern in config.get("rule_files", [])]
        self.home.mkdir(parents=True, exist_ok=True)
        if self.ingest_key:
            # The key stays in a file of its own, readable by this user only, not in the config.
            self.ingest_key_file.touch(mode=0o600)
            self.ingest_key_file.chmod(0o600)
            self.ingest_key_file.write_text(self.ingest_key.reveal())
            for job in config["scrape_configs"]:
                if job["job_name"] == INGEST_JOB:
                    job["authorization"] = {"type": "Bearer", "credentials_file": str(self.ingest_key_file)}
        target = self.home / "prometheus.yml"
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def start(self, timeout: float = 30.0) -> None:
        if self.running() and self.answers():
            return
        binary = _binary("prometheus")
        ensure_port_free("Prometheus", self.host, self.port, "LEADFLOW_PROMETHEUS_PORT")
        config = self.render_config()
        argv = [
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address={self.host}:{self.port}", "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=30d",
        ]
        start_detached("Prometheus", argv, self.log_file, self.pid_file)
        if not wait_until(lambda: self.answers() or not self.running(), timeout) or not self.running():
            stop_pid(self.pid_file)
            raise StackError(f"Prometheus: did not start on {self.url}. Log:\n{tail(self.log_file)}")

    def stop(self) -> bool:
        return stop_pid(self.pid_file)


@dataclass
class AlertmanagerNode:
    home: Path
    port: int
    host: str = "127.0.0.1"
    # Receiver webhook URLs; read from the environment so no URL with a token is committed.
    oncall_url: str = field(default_factory=lambda: os.environ.get("LEADFLOW_ONCALL_WEBHOOK_URL", ""))
    ticket_url: str = field(default_factory=lambda: os.environ.get("LEADFLOW_TICKET_WEBHOOK_URL", ""))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "alertmanager.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "alertmanager.log"

    def answers(self) -> bool:
        return port_answers(self.host, self.port)

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def render_config(self) -> Path:
        """deploy/alertmanager/alertmanager.yml with the webhook URLs from the environment,
        rendered by deploy/alertmanager/render.py (Alertmanager 0.25 has no url_file)."""
        spec = importlib.util.spec_from_file_location("leadflow_am_render", DEPLOY / "alertmanager" / "render.py")
        render = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(render)
        env = dict(os.environ)
        for var, url in (("LEADFLOW_ONCALL_WEBHOOK_URL", self.oncall_url), ("LEADFLOW_TICKET_WEBHOOK_URL", self.ticket_url)):
            if url:
                env[var] = url
        try:
            return render.write(self.home / "alertmanager.yml", env=env)
        except render.RenderError as exc:
            raise StackError(f"Alertmanager: {exc}") from None

    def start(self, timeout: float = 30.0) -> None:
        if self.running() and self.answers():
            return
        binary = _binary("prometheus-alertmanager", "alertmanager")
        ensure_port_free("Alertmanager", self.host, self.port, "LEADFLOW_ALERTMANAGER_PORT")
        config = self.render_config()
        argv = [
            binary, f"--config.file={config}", f"--storage.path={self.home / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--cluster.listen-address=",  # one node: no gossip port to collide with anything
        ]
        start_detached("Alertmanager", argv, self.log_file, self.pid_file)
        if not wait_until(lambda: self.answers() or not self.running(), timeout) or not self.running():
            stop_pid(self.pid_file)
            raise StackError(f"Alertmanager: did not start on {self.url}. Log:\n{tail(self.log_file)}")

    def stop(self) -> bool:
        return stop_pid(self.pid_file)
