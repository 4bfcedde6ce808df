"""A KRaft cluster of several Kafka nodes on 127.0.0.1 (each broker and controller), for a
replicated deployment's topics: replication 3 and min.insync.replicas 2 on three nodes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.stack.kafka_node import KafkaNode, new_cluster_id
from services.stack.process import StackError


@dataclass
class KafkaCluster:
    home: Path                                  # node i lives in home/node-<i>
    ports: list[tuple[int, int]]                # (broker port, controller port) per node
    heap: str = "512m"
    host: str = "127.0.0.1"
    nodes: list[KafkaNode] = field(init=False)

    def __post_init__(self) -> None:
        if not self.ports:
            raise StackError("Kafka cluster: no nodes")
        voters = ",".join(f"{i}@{self.host}:{c}" for i, (_, c) in enumerate(self.ports, start=1))
        cluster_id = self._cluster_id()
        self.nodes = [
            KafkaNode(self.home / f"node-{i}", port, controller, heap=self.heap, host=self.host, node_id=i,
                      voters=voters, replication=min(3, len(self.ports)), cluster_id=cluster_id)
            for i, (port, controller) in enumerate(self.ports, start=1)
        ]

    def _cluster_id(self) -> str:
        """One id for every node, kept beside them so a restart of the cluster reuses it."""
        path = self.home / "cluster-id"
        if path.exists():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        path.write_text(cluster_id)
        return cluster_id

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def answers(self) -> bool:
        return all(node.answers() for node in self.nodes)

    def start(self, timeout: float = 120.0) -> None:
        waiting = [node for node in self.nodes if not (node.running() and node.answers())]
        for node in waiting:
            node.launch()
        for node in waiting:
            node.wait_ready(timeout)

    def stop(self) -> bool:
        stopped = False
        for node in self.nodes:
            stopped = node.stop() or stopped
        return stopped
