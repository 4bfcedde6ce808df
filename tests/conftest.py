"""Shared fixtures.

Unit tests need none of this. Integration, end-to-end and fault tests ask for `stack` (a real
Kafka and PostgreSQL, started once per test session on free ports in a throwaway folder) and
`settings` (that stack, with topics and a database schema of the test's own, so tests never
share state). Set LEADFLOW_TEST_KAFKA=host:port and LEADFLOW_TEST_POSTGRES_DSN=... to run the
same tests against servers you already run instead.
"""
from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from hypothesis import settings as hypothesis_settings

from services.common.config import Settings, StackPorts, Topics, load_settings
from services.common.kafka import ensure_topics
from services.stack.kafka_node import KafkaNode
from services.stack.postgres_node import PostgresNode

REPO = Path(__file__).resolve().parent.parent

# Property tests check invariants, not speed: no per-example deadline (a loaded CI machine must not
# turn a slow example into a failure). In CI the examples are derandomized, so a run is repeatable.
hypothesis_settings.register_profile("leadflow", deadline=None, print_blob=True)
hypothesis_settings.register_profile("ci", parent=hypothesis_settings.get_profile("leadflow"), derandomize=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "leadflow")


@dataclass(frozen=True)
class TestStack:
    kafka_bootstrap: str
    postgres_dsn: str
    home: Path
    kafka: KafkaNode | None = None
    postgres: PostgresNode | None = None


def _test_home() -> Path:
    # Inside the checkout's ignored data folder: the postgres user must be able to reach it,
    # which a private mkdtemp folder under /tmp would not allow.
    home = REPO / ".leadflow" / f"test-{os.getpid()}"
    if home.exists():
        shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home


@pytest.fixture(scope="session")
def stack() -> TestStack:
    external_kafka = os.environ.get("LEADFLOW_TEST_KAFKA")
    external_pg = os.environ.get("LEADFLOW_TEST_POSTGRES_DSN")
    home = _test_home()
    kafka = postgres = None
    # Ports below the ephemeral range (stable_port): the fault suite restarts both servers, which
    # must find their ports free again, not taken by another program's free_port().
    if not external_kafka:
        kafka = KafkaNode(home / "kafka", stable_port(), stable_port(), heap="512m")
        kafka.start()
    if not external_pg:
        # A throwaway cluster: durability across power loss is not under test, speed is.
        postgres = PostgresNode(home / "postgres", stable_port(), database="leadflow_test",
                                settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        postgres.start()
    yield TestStack(
        kafka_bootstrap=external_kafka or kafka.bootstrap,
        postgres_dsn=external_pg or postgres.dsn,
        home=home, kafka=kafka, postgres=postgres,
    )
    if postgres is not None:
        postgres.stop()
    if kafka is not None:
        kafka.stop()
    shutil.rmtree(home, ignore_errors=True)


def make_test_settings(stack: TestStack, partitions: int = 3) -> Settings:
    """Settings for one test: the session's servers, and names of its own."""
    tag = uuid.uuid4().hex[:10]
    base = load_settings({})
    return base.with_changes(
        kafka_bootstrap=stack.kafka_bootstrap,
        postgres_dsn=type(base.postgres_dsn)(stack.postgres_dsn),
        postgres_schema=f"t_{tag}",
        topics=Topics(prefix=f"t-{tag}."),
        topic_partitions=partitions,
        home=stack.home,
        ports=StackPorts(),
        instance_id=f"test-{tag}",
    )


async def create_test_topics_and_schema(s: Settings) -> Settings:
    """The test's own topics and database schema (both empty)."""
    await ensure_topics(s)
    conn = await asyncpg.connect(s.postgres_dsn.reveal())
    try:
        await conn.execute(f'CREATE SCHEMA "{s.postgres_schema}"')
    finally:
        await conn.close()
    return s


@pytest.fixture
async def settings(stack: TestStack) -> Settings:
    s = await create_test_topics_and_schema(make_test_settings(stack))
    yield s
    conn = await asyncpg.connect(s.postgres_dsn.reveal())
    try:
        await conn.execute(f'DROP SCHEMA "{s.postgres_schema}" CASCADE')
    finally:
        await conn.close()


def stable_port(low: int = 20000, high: int = 32000) -> int:
    """A free port below Linux's ephemeral range (32768-60999 by default), chosen at random."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {low} and {high}")


@pytest.fixture(scope="session")
def kafka_cluster(stack: TestStack):
    """A three-node KRaft cluster (each node broker and controller) on free ports, beside the
    session's single broker; replication 3 and min.insync.replicas 2 for what runs on it."""
    from services.stack.kafka_cluster import KafkaCluster

    # Ports below the ephemeral range: a node killed and restarted must find its port free, and a
    # client's own outgoing port can never be one of them.
    ports = [(stable_port(), stable_port()) for _ in range(3)]
    cluster = KafkaCluster(stack.home / "kafka-cluster", ports, heap="384m")
    cluster.start()
    yield cluster
    cluster.stop()
