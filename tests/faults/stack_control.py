"""What the pipeline fault suite does to the servers under the pipeline: restart the broker (or,
in a cluster, one broker) and PostgreSQL, on the nodes the test fixtures started."""
from __future__ import annotations

import time

from services.stack.kafka_node import KafkaNode
from services.stack.postgres_node import PostgresNode
from services.stack.process import StackError, port_answers, read_pid


def _when_port_free(node: KafkaNode, timeout: float = 60.0) -> None:
    """Wait until nothing answers on the node's ports. A client that keeps reconnecting to a dead
    broker's port on 127.0.0.1 can, now and then, connect to itself (its own ephemeral port is the
    one it dials): that lasts until the client gives up the attempt."""
    deadline = time.monotonic() + timeout
    while port_answers(node.host, node.port) or port_answers(node.host, node.controller_port):
        if time.monotonic() > deadline:
            raise StackError(f"Kafka node {node.node_id}: port {node.port} or {node.controller_port} still taken")
        time.sleep(0.5)


class NodesControl:
    def __init__(self, brokers: list[KafkaNode], postgres: PostgresNode) -> None:
        if not brokers or postgres is None:
            raise RuntimeError("the fault suite restarts Kafka and PostgreSQL: it needs the stack the fixtures "
                               "start, not LEADFLOW_TEST_KAFKA / LEADFLOW_TEST_POSTGRES_DSN servers")
        self.brokers = brokers
        self.postgres = postgres

    def restart_kafka(self) -> None:
        for node in self.brokers:
            node.stop()
        for node in self.brokers:
            _when_port_free(node)
            node.launch()
        for node in self.brokers:
            node.wait_ready()

    def restart_postgres(self) -> None:
        self.postgres.stop()
        self.postgres.start()

    def broker_pids(self) -> dict[int, int]:
        return {node.node_id: read_pid(node.pid_file) for node in self.brokers if read_pid(node.pid_file)}

    def restart_broker(self, node_id: int) -> None:
        node = next(n for n in self.brokers if n.node_id == node_id)
        _when_port_free(node)
        node.start()
