"""What the pipeline fault suite does to the servers under the pipeline: restart the broker (or,
in a cluster, one broker) and PostgreSQL, on the nodes the test fixtures started."""
from __future__ import annotations

from services.stack.kafka_node import KafkaNode
from services.stack.postgres_node import PostgresNode
from services.stack.process import read_pid


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
        node.start()
