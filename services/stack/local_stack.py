"""The local stack of `leadflow up`: Kafka, PostgreSQL, Prometheus and Alertmanager on 127.0.0.1,
data and logs under one folder (settings.home, by default `.leadflow/`)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.common.config import Settings
from services.common.kafka import ensure_topics
from services.stack.kafka_node import KafkaNode
from services.stack.monitoring_nodes import AlertmanagerNode, PrometheusNode
from services.stack.postgres_node import PostgresNode
from services.stack.process import port_answers
from services.stack.service_processes import ServiceProcesses


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    answers: bool


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        home, ports = settings.home, settings.ports
        self.kafka = KafkaNode(home / "kafka", ports.kafka, ports.kafka_controller)
        self.postgres = PostgresNode(home / "postgres", ports.postgres)
        self.prometheus = PrometheusNode(
            home / "prometheus", ports.prometheus, ports,
            service_ports={8080: settings.ingest_port, 9101: settings.lifecycle_metrics_port,
                           9102: settings.sla_metrics_port},
            ingest_key=settings.prometheus_ingest_key,
        )
        self.alertmanager = AlertmanagerNode(home / "alertmanager", ports.alertmanager)

    def up(self, log=print) -> None:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        log(f"Kafka        starting on {self.kafka.bootstrap} ...")
        self.kafka.start()
        created = asyncio.run(ensure_topics(self.settings))
        log(f"Kafka        up; topics created: {', '.join(created) if created else 'none (all exist)'}")
        log(f"PostgreSQL   starting on 127.0.0.1:{self.postgres.port} ...")
        self.postgres.start()
        log(f"PostgreSQL   up; database {self.postgres.database}")
        self.alertmanager.start()
        log(f"Alertmanager up at {self.alertmanager.url}")
        self.prometheus.start()
        log(f"Prometheus   up at {self.prometheus.url}")

    def down(self, log=print) -> None:
        ServiceProcesses(self.settings).stop(log=log)
        for name, node in (("Prometheus", self.prometheus), ("Alertmanager", self.alertmanager),
                           ("PostgreSQL", self.postgres), ("Kafka", self.kafka)):
            log(f"{name:<12} {'stopped' if node.stop() else 'was not running'}")

    def status(self) -> list[ComponentStatus]:
        s = self.settings
        rows = [
            ComponentStatus("kafka", self.kafka.bootstrap, self.kafka.answers()),
            ComponentStatus("postgres", f"127.0.0.1:{self.postgres.port}", self.postgres.answers()),
            ComponentStatus("prometheus", self.prometheus.url, self.prometheus.answers()),
            ComponentStatus("alertmanager", self.alertmanager.url, self.alertmanager.answers()),
        ]
        for name, port in (("ingest", s.ingest_port), ("lifecycle", s.lifecycle_metrics_port),
                           ("sla_monitor", s.sla_metrics_port)):
            rows.append(ComponentStatus(name, f"http://127.0.0.1:{port}/metrics", port_answers("127.0.0.1", port)))
        return rows
