"""Bad set-up gets a message that says what failed and what to do."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.stack import kafka_node
from services.stack.kafka_node import KafkaNode, java_bin, resolve_classpath
from services.stack.postgres_node import PostgresNode
from services.stack.process import StackError, free_port


def test_port_in_use_names_the_port_and_the_variable(tmp_path: Path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        node = KafkaNode(tmp_path / "kafka", port, free_port())
        with pytest.raises(StackError) as info:
            node.start()
    message = str(info.value)
    assert f"127.0.0.1:{port} is already in use" in message
    assert "LEADFLOW_KAFKA_PORT" in message


def test_postgres_port_in_use_is_refused_before_initdb(tmp_path: Path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        node = PostgresNode(tmp_path / "pg", port)
        with pytest.raises(StackError, match="LEADFLOW_POSTGRES_PORT"):
            node.start()
    assert not (tmp_path / "pg" / "data" / "PG_VERSION").exists()


def test_no_java_says_what_to_install(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError) as info:
        java_bin()
    assert "no Java found" in str(info.value)
    assert "apt-get install openjdk-17-jre-headless" in str(info.value)


def test_failed_jar_download_says_what_failed(monkeypatch, tmp_path: Path):
    pom = tmp_path / "pom.xml"
    pom.write_text(
        (kafka_node.POM.read_text())
        .replace("<kafka.version>", "<kafka.version>0.0.0-no-such-release<!--")
        .replace("</kafka.version>", "--></kafka.version>")
    )
    monkeypatch.setattr(kafka_node, "POM", pom)
    with pytest.raises(StackError) as info:
        resolve_classpath(tmp_path / "jars")
    message = str(info.value)
    assert "downloading the Kafka jars with Maven failed" in message
    assert "0.0.0-no-such-release" in message
