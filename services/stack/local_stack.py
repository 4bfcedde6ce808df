"""The local stack of `leadflow up`: Kafka, PostgreSQL, Prometheus and Alertmanager on 127.0.0.1,
data and logs under one folder (settings.home, by default `.leadflow/`)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.common.config import Settings
from services.common.kafka import ensure_topics
from services.stack.kafka_cluster import KafkaCluster
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


CLUSTER_PORT_STEP = 100   # node i of a cluster listens on the configured ports + 100 * (i - 1)


def cluster_of(settings: Settings, brokers: int) -> KafkaCluster:
    """The `leadflow up --brokers N` cluster: node 1 on the configured Kafka ports, the others 100 apart."""
    p = settings.ports
    return KafkaCluster(settings.home / "kafka-cluster",
                        [(p.kafka + CLUSTER_PORT_STEP * i, p.kafka_controller + CLUSTER_PORT_STEP * i)
                         for i in range(brokers)])


class LocalStack:
    def __init__(self, settings: Settings, brokers: int | None = None) -> None:
        home, ports = settings.home, settings.ports
        self.brokers_file = home / "kafka-brokers"
        if brokers is None:   # whatever `leadflow up` last started here
            try:
                brokers = int(self.brokers_file.read_text())
            except (FileNotFoundError, ValueError):
                brokers = 1
        self.brokers = brokers
        if brokers > 1:
            self.kafka = cluster_of(settings, brokers)
            settings = settings.with_changes(
                kafka_bootstrap=self.kafka.bootstrap,
                topic_replication=max(settings.topic_replication, min(3, brokers)),
                topic_min_insync_replicas=max(settings.topic_min_insync_replicas, min(2, brokers - 1)))
        else:
            self.kafka = KafkaNode(home / "kafka", ports.kafka, ports.kafka_controller)
        self.settings = settings
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
        self.brokers_file.write_text(str(self.brokers))
        created = asyncio.run(ensure_topics(self.settings))
        log(f"Kafka        up; topics created: {', '.join(created) if created else 'none (all exist)'}")
        if self.brokers > 1:
            log(f"Kafka        {self.brokers} brokers, replication {self.settings.topic_replication}, "
                f"min.insync.replicas {self.settings.topic_min_insync_replicas}: run the services with "
                f"LEADFLOW_KAFKA_BOOTSTRAP={self.settings.kafka_bootstrap}")
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
