"""Where the benchmark runs: its own Kafka and PostgreSQL on free ports in a throwaway folder
(`.leadflow/bench-<pid>`), the machine description, and settings per part (each part gets topics
and a database schema of its own, so parts never see each other's records)."""
from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from services.common.config import Settings, StackPorts, Topics, load_settings, repo_root
from services.common.kafka import ensure_topics
from services.stack.kafka_node import KafkaNode
from services.stack.postgres_node import PostgresNode
from services.stack.process import free_port

POM = repo_root() / "deploy" / "kafka" / "pom.xml"


@dataclass
class BenchStack:
    """A Kafka and a PostgreSQL for one benchmark run (or servers someone else runs)."""

    kafka_bootstrap: str
    postgres_dsn: str
    home: Path
    kafka: KafkaNode | None = None
    postgres: PostgresNode | None = None

    @classmethod
    def external(cls, kafka_bootstrap: str, postgres_dsn: str, parent: Path) -> "BenchStack":
        """Servers someone else runs (the test fixtures); only a work folder under `parent` is ours."""
        home = parent / f"bench-{uuid.uuid4().hex[:8]}"
        home.mkdir(parents=True)
        return cls(kafka_bootstrap=kafka_bootstrap, postgres_dsn=postgres_dsn, home=home)

    @classmethod
    def start(cls, home: Path | None = None, log=print) -> "BenchStack":
        """Start both servers under `home` (default `.leadflow/bench-<pid>`). Postgres keeps its
        durable defaults (fsync, synchronous_commit): the event store's commits are measured as
        they would be run."""
        home = home or repo_root() / ".leadflow" / f"bench-{os.getpid()}"
        if home.exists():
            shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        stack = cls(kafka_bootstrap="", postgres_dsn="", home=home)
        try:
            log(f"starting Kafka and PostgreSQL in {home} ...")
            stack.kafka = KafkaNode(home / "kafka", free_port(), free_port(), heap="768m")
            stack.kafka.start()
            stack.kafka_bootstrap = stack.kafka.bootstrap
            stack.postgres = PostgresNode(home / "postgres", free_port(), database="leadflow_bench")
            stack.postgres.start()
            stack.postgres_dsn = stack.postgres.dsn
        except BaseException:
            stack.stop()
            raise
        return stack

    def stop(self) -> None:
        """Stop what was started here and delete the folder."""
        errors = []
        for node in (self.postgres, self.kafka):
            if node is None:
                continue
            try:
                node.stop()
            except Exception as exc:  # noqa: BLE001 - stop the other one anyway
                errors.append(exc)
        shutil.rmtree(self.home, ignore_errors=True)
        if errors:
            raise errors[0]


def part_settings(stack: BenchStack, part: str, partitions: int) -> Settings:
    """Settings for one part of the run: the bench's servers, topics and a schema of its own."""
    tag = f"{part}-{uuid.uuid4().hex[:6]}"
    base = load_settings({})
    return base.with_changes(
        kafka_bootstrap=stack.kafka_bootstrap,
        postgres_dsn=type(base.postgres_dsn)(stack.postgres_dsn),
        postgres_schema=re.sub(r"[^a-z0-9_]", "_", f"b_{tag}".lower()),
        topics=Topics(prefix=f"bench-{tag}."),
        topic_partitions=partitions,
        home=stack.home,
        ports=StackPorts(),
        instance_id=f"bench-{tag}",
    )


async def prepare_part(settings: Settings, schema: bool = True) -> None:
    await ensure_topics(settings)
    if schema:
        conn = await asyncpg.connect(settings.postgres_dsn.reveal())
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{settings.postgres_schema}"')
        finally:
            await conn.close()


def service_env(settings: Settings, **ports: int) -> dict[str, str]:
    """The LEADFLOW_* environment that points a service (`python -m services.X`) at `settings`."""
    # The caller's LEADFLOW_* settings would point the service elsewhere; LEADFLOW_BENCH_* are ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_") or k.startswith("LEADFLOW_BENCH_")}
    env.update({
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_POSTGRES_DSN": settings.postgres_dsn.reveal(),
        "LEADFLOW_POSTGRES_SCHEMA": settings.postgres_schema,
        "LEADFLOW_TOPIC_PREFIX": settings.topics.prefix,
        "LEADFLOW_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "LEADFLOW_HOME": str(settings.home),
        "LEADFLOW_INSTANCE_ID": settings.instance_id,
        "LEADFLOW_LIFECYCLE_METRICS_PORT": str(ports.get("lifecycle", free_port())),
        "LEADFLOW_SLA_METRICS_PORT": str(ports.get("sla_monitor", free_port())),
        "LEADFLOW_INGEST_PORT": str(ports.get("ingest", free_port())),
        "PYTHONUNBUFFERED": "1",
    })
    # LEADFLOW_BENCH_SET_<NAME>=value sets LEADFLOW_<NAME> for the services: how a tuning lever
    # is measured against the defaults (interleaved runs, docs/performance.md).
    for key, value in os.environ.items():
        if key.startswith(SERVICE_SETTING_PREFIX) and len(key) > len(SERVICE_SETTING_PREFIX):
            env["LEADFLOW_" + key[len(SERVICE_SETTING_PREFIX):]] = value
    return env


SERVICE_SETTING_PREFIX = "LEADFLOW_BENCH_SET_"


# --- the machine -----------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kafka_version() -> str | None:
    """The broker version the stack runs (deploy/kafka/pom.xml pins it)."""
    try:
        match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


async def postgres_version(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn)
    except Exception:  # noqa: BLE001
        return None
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


def describe_machine(postgres: str | None = None) -> dict[str, Any]:
    vm = psutil.virtual_memory()
    freq = psutil.cpu_freq()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cpu_mhz": round(freq.current) if freq else None,
        "memory_mb": round(vm.total / 2**20),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "kafka_version": kafka_version(),
        "postgres_version": postgres,
        "libraries": {name: _version(name) for name in ("aiokafka", "faust-streaming", "fastavro", "asyncpg", "aiohttp")},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

