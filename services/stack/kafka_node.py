"""A single-node Apache Kafka in KRaft mode, run from the official jars Maven resolves into ~/.m2."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.common.config import repo_root
from services.stack.process import (
    StackError, ensure_port_free, port_answers, read_pid, start_detached, stop_pid, tail, wait_until,
)

POM = repo_root() / "deploy" / "kafka" / "pom.xml"
# One classpath cache per checkout, shared by `leadflow up`, the test fixtures and the benchmark.
CLASSPATH_CACHE = repo_root() / ".leadflow" / "kafka-jars"
LOG4J = repo_root() / "deploy" / "kafka" / "log4j2.yaml"


def java_bin() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError(
            "Kafka: no Java found. Kafka 4 needs Java 17 or newer: "
            "install it (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    return found


def resolve_classpath(cache_dir: Path) -> str:
    """Resolve the broker's jars with Maven (cached in ~/.m2) and return the classpath.

    The result is cached beside the data and recomputed only when the pom changes, so a second
    `make up` or `make test` does not ask Maven at all.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    cp_file = cache_dir / "classpath.txt"
    stamp = cache_dir / "classpath.pom-mtime"
    pom_mtime = str(POM.stat().st_mtime_ns)
    if cp_file.exists() and stamp.exists() and stamp.read_text() == pom_mtime:
        cp = cp_file.read_text().strip()
        if cp and all(Path(j).exists() for j in cp.split(os.pathsep)):
            return cp
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError(
            "Kafka: Maven (mvn) is needed to fetch the Kafka jars from Maven Central: "
            "install it (Debian: apt-get install maven)."
        )
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath", f"-Dmdep.outputFile={cp_file}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0 or not cp_file.exists():
        raise StackError(
            "Kafka: downloading the Kafka jars with Maven failed. Check network access to Maven "
            f"Central and ~/.m2/settings.xml, then run again. Maven said:\n{(proc.stdout + proc.stderr)[-2000:]}"
        )
    stamp.write_text(pom_mtime)
    return cp_file.read_text().strip()


def new_cluster_id() -> str:
    cluster_id = "-"
    while cluster_id.startswith("-"):   # as Kafka's Uuid.randomUuid: a leading '-' reads as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    return cluster_id


@dataclass
class KafkaNode:
    home: Path            # e.g. .leadflow/kafka
    port: int
    controller_port: int
    heap: str = "768m"
    host: str = "127.0.0.1"
    # A member of a cluster (services/stack/kafka_cluster.py): its id, every controller
    # ("1@host:port,2@host:port,..."), the replication of the internal topics, the shared cluster id.
    node_id: int = 1
    voters: str | None = None
    replication: int = 1
    cluster_id: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def answers(self) -> bool:
        return port_answers(self.host, self.port)

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def _write_config(self) -> Path:
        data = self.home / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters or f"{self.node_id}@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            # Internal topics cannot have more replicas than brokers (one, unless in a cluster).
            "offsets.topic.replication.factor": str(self.replication),
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": str(min(2, self.replication)),
            "transaction.state.log.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "6",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def start(self, timeout: float = 90.0) -> None:
        if self.running() and self.answers():
            return
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to answer: a cluster's nodes answer only once
        a majority of its controllers runs, so they are launched together, then waited for."""
        if self.running():
            stop_pid(self.pid_file)
        ensure_port_free("Kafka", self.host, self.port, "LEADFLOW_KAFKA_PORT")
        ensure_port_free("Kafka controller", self.host, self.controller_port, "LEADFLOW_KAFKA_CONTROLLER_PORT")
        java = java_bin()
        self.home.mkdir(parents=True, exist_ok=True)
        cp = resolve_classpath(CLASSPATH_CACHE)
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = self.cluster_id or new_cluster_id()
            fmt = subprocess.run(
                [java, "-cp", cp, f"-Dlog4j2.configurationFile={LOG4J}", "kafka.tools.StorageTool",
                 "format", "-t", cluster_id, "-c", str(config)],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise StackError(f"Kafka: formatting the KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        argv = [
            java, "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}", f"-Dkafka.logs.dir={self.home}",
            "-cp", cp, "kafka.Kafka", str(config),
        ]
        start_detached("Kafka", argv, self.log_file, self.pid_file)

    def wait_ready(self, timeout: float = 90.0) -> None:
        if not wait_until(lambda: self.answers() or not self.running(), timeout):
            stop_pid(self.pid_file)
            raise StackError(f"Kafka: did not answer on {self.bootstrap} within {timeout:.0f}s. Log:\n{tail(self.log_file)}")
        if not self.running():
            raise StackError(f"Kafka node {self.node_id} exited while starting. Log:\n{tail(self.log_file)}")

    def stop(self) -> bool:
        return stop_pid(self.pid_file, timeout=30)
