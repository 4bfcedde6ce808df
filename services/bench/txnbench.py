"""Kafka transactions, one per partition and round (what the lifecycle does with aiokafka today)
against one per round across all partitions (KIP-447: confluent-kafka's
`send_offsets_to_transaction` with the consumer's group metadata). A standalone micro-benchmark,
not a part of `leadflow bench`: confluent-kafka is not a dependency of leadflow
(`pip install confluent-kafka` first).

    python -m services.bench.txnbench [--rounds 150] [--partitions 6] [--records 50]

It starts its own Kafka broker (KRaft, as the bench does), and per variant sends `rounds` rounds
of `records` records to each of `partitions` output partitions, each round committing the input
offsets of every partition with the records (as a consume-transform-produce loop does), and
measures the broker's CPU seconds, this process's CPU seconds and the wall time per round.
Variants (run interleaved, `--repeats` times):
- `aiokafka-per-partition`: a transactional producer per partition, the partitions' transactions
  concurrent (asyncio.gather), offsets by group id (TxnOffsetCommit v0: no member fencing);
- `aiokafka-per-round`: one producer, one transaction per round, offsets by group id: the
  transaction count of EOS v2 without its fencing (what aiokafka could do, unsafe with zombies);
- `confluent-per-round`: one producer, one transaction per round, offsets with the group
  metadata of a consumer that is a member of the group (KIP-447 fencing).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from services.stack.kafka_node import KafkaNode
from services.stack.process import free_port, read_pid

IN_TOPIC, OUT_TOPIC, GROUP = "txnbench.in", "txnbench.out", "txnbench"


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def _create_topics(bootstrap: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in (IN_TOPIC, OUT_TOPIC)])
    finally:
        await admin.close()


async def _fill_input(bootstrap: str, partitions: int, per_partition: int) -> None:
    """Input records, so the committed offsets point at records that exist."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(IN_TOPIC, b"x" * 100, partition=p) for p in range(partitions)
                   for _ in range(per_partition)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def aiokafka_per_partition(bootstrap: str, partitions: int, rounds: int, records: int, value: bytes,
                                 start_offset: int) -> Callable[[], Any]:
    from aiokafka import AIOKafkaProducer, TopicPartition

    producers = [AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"txnbench-pp-{p}-{start_offset}",
                                  enable_idempotence=True, acks="all", linger_ms=5, max_batch_size=256 * 1024)
                 for p in range(partitions)]
    for producer in producers:
        await producer.start()

    async def one(p: int, offset: int) -> None:
        producer = producers[p]
        async with producer.transaction():
            for _ in range(records):
                await producer.send(OUT_TOPIC, value, partition=p)
            await producer.send_offsets_to_transaction({TopicPartition(IN_TOPIC, p): offset}, GROUP)

    async def run() -> None:
        for r in range(rounds):
            offset = start_offset + (r + 1) * records
            await asyncio.gather(*(one(p, offset) for p in range(partitions)))

    async def close() -> None:
        for producer in producers:
            await producer.stop()

    return run, close


async def aiokafka_per_round(bootstrap: str, partitions: int, rounds: int, records: int, value: bytes,
                             start_offset: int) -> Callable[[], Any]:
    from aiokafka import AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"txnbench-pr-{start_offset}",
                                enable_idempotence=True, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()

    async def run() -> None:
        for r in range(rounds):
            offset = start_offset + (r + 1) * records
            async with producer.transaction():
                for p in range(partitions):
                    for _ in range(records):
                        await producer.send(OUT_TOPIC, value, partition=p)
                await producer.send_offsets_to_transaction(
                    {TopicPartition(IN_TOPIC, p): offset for p in range(partitions)}, GROUP)

    return run, producer.stop


async def confluent_per_round(bootstrap: str, partitions: int, rounds: int, records: int, value: bytes,
                              start_offset: int) -> Callable[[], Any]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.subscribe([IN_TOPIC])
    deadline = time.monotonic() + 60
    while not consumer.assignment():
        consumer.poll(0.2)
        if time.monotonic() > deadline:
            raise RuntimeError("the confluent consumer got no partitions within 60 s")
    # A member of the group that fetches nothing: librdkafka prefetches in the background even
    # when not polled, which would charge the broker for reads no other variant makes.
    consumer.pause(consumer.assignment())
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"txnbench-cf-{start_offset}",
                         "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                         "batch.size": 256 * 1024})
    producer.init_transactions(30)
    metadata = consumer.consumer_group_metadata()

    async def run() -> None:
        for r in range(rounds):
            offset = start_offset + (r + 1) * records
            producer.begin_transaction()
            for p in range(partitions):
                for _ in range(records):
                    producer.produce(OUT_TOPIC, value, partition=p)
            producer.poll(0)
            producer.send_offsets_to_transaction(
                [TopicPartition(IN_TOPIC, p, offset) for p in range(partitions)], metadata, 30)
            producer.commit_transaction(30)

    async def close() -> None:
        producer.flush(10)
        consumer.close()

    return run, close


VARIANTS = {
    "aiokafka-per-partition": aiokafka_per_partition,
    "aiokafka-per-round": aiokafka_per_round,
    "confluent-per-round": confluent_per_round,
}


async def measure(bootstrap: str, broker: psutil.Process, args: argparse.Namespace) -> dict[str, Any]:
    await _create_topics(bootstrap, args.partitions)
    per_variant = args.rounds * args.records * args.repeats * len(VARIANTS)
    await _fill_input(bootstrap, args.partitions, per_variant + args.records)
    me = psutil.Process()
    value = b"v" * args.value_bytes
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    start_offset = 0
    for _ in range(args.repeats):
        for name, make in VARIANTS.items():
            # producers started and transactional ids initialised outside the timed window
            run, close = await make(bootstrap, args.partitions, args.rounds, args.records, value, start_offset)
            start_offset += args.rounds * args.records
            b0, c0, w0 = _cpu_s(broker), _cpu_s(me), time.perf_counter()
            await run()
            b1, c1, w1 = _cpu_s(broker), _cpu_s(me), time.perf_counter()
            await close()
            runs[name].append({"broker_ms_per_round": (b1 - b0) / args.rounds * 1e3,
                               "client_ms_per_round": (c1 - c0) / args.rounds * 1e3,
                               "wall_ms_per_round": (w1 - w0) / args.rounds * 1e3})
    return summarise(runs, args.partitions * args.records)


def summarise(runs: dict[str, list[dict[str, float]]], records_per_round: int) -> dict[str, Any]:
    """Per variant: the median over repeats of each per-round figure, and the broker's CPU per record."""
    out: dict[str, Any] = {}
    for name, samples in runs.items():
        if not samples:
            continue
        fig = {}
        for key in samples[0]:
            values = sorted(s[key] for s in samples)
            fig[key] = round(values[len(values) // 2], 3)
            fig[key.replace("_ms_per_round", "_ms_per_round_all")] = [round(s[key], 3) for s in samples]
        fig["broker_us_per_record"] = round(fig["broker_ms_per_round"] * 1e3 / records_per_round, 2)
        out[name] = fig
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--records", type=int, default=50, help="records per partition and round")
    parser.add_argument("--value-bytes", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    home = Path(".leadflow") / f"txnbench-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    node = KafkaNode(home / "kafka", free_port(), free_port(), heap="768m")
    try:
        node.start()
        broker = psutil.Process(read_pid(node.pid_file))
        load0 = os.getloadavg()
        results = asyncio.run(measure(node.bootstrap, broker, args))
        doc = {"config": vars(args) | {"json": str(args.json) if args.json else None},
               "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                           "load_average_at_start": [round(x, 2) for x in load0],
                           "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
               "results": results}
        print(json.dumps(doc, indent=2))
        if args.json:
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
    finally:
        node.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
