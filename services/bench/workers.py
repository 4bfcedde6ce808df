"""The peers the services are measured against, each run as its own process like the services:

    python -m services.bench.workers passthrough --input T --output T --count N --report FILE
    python -m services.bench.workers faust-peer  --input T --output T --count N --report FILE --datadir D
    python -m services.bench.workers faust-floor --input T --count N --report FILE --datadir D

Kafka comes from the LEADFLOW_* environment (load_settings). Each writes a JSON report (the wall
times of its first record and of its N-th, and its CPU time) when it has handled N records; the
passthrough then exits, the Faust workers run until SIGTERM.

- passthrough: the ceiling. Plain aiokafka: read_committed consumer, getmany batches, every
  record produced unchanged by an idempotent acks=all producer, all the batch's sends awaited
  once, then the offsets committed. No decoding: what Kafka and the client cost by themselves.
- faust-peer: the same per-event work as the lifecycle core (decode, apply, encode) written the
  way a Faust user writes it: an `@app.agent` iterating `stream.events()` and
  `await topic.send(...)` per event. Lead states live in a dict in the worker (no Table: a Faust
  Table would add a changelog topic and a write per event, so this peer is the generous case).
  The producer is tuned like leadflow's (acks=all, 5 ms linger, 256 KiB batches); faust's
  defaults otherwise: at_least_once, read_uncommitted, its own commit interval.
- faust-floor: an agent that does nothing with the records: the framework's own cost per event,
  either iterating the stream per event (`--style iterate`, the plain do-nothing agent) or in
  `stream.take_events(1000, within=0.2)` batches (`--style take`, how the SLA monitor consumes).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path


_PROFILE = None


def _start_profile() -> None:
    """LEADFLOW_BENCH_PROFILE=FILE: profile the worker (cProfile) until its report is written."""
    global _PROFILE
    if os.environ.get("LEADFLOW_BENCH_PROFILE"):
        import cProfile

        _PROFILE = cProfile.Profile()
        _PROFILE.enable()


def _write_report(path: str, first_at: float | None, done_at: float, count: int) -> None:
    if _PROFILE is not None:
        _PROFILE.disable()
        _PROFILE.dump_stats(os.environ["LEADFLOW_BENCH_PROFILE"])
    cpu = os.times()
    doc = {"first_at": first_at, "done_at": done_at, "count": count, "cpu_s": cpu.user + cpu.system,
           "pid": os.getpid()}
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


async def passthrough(input_topic: str, output_topic: str, count: int, report: str, group: str) -> None:
    from services.common.config import load_settings
    from services.common.kafka import make_consumer, make_producer

    settings = load_settings()
    consumer = make_consumer(settings, group, input_topic, max_poll_records=5000)
    producer = make_producer(settings)
    await producer.start()
    await consumer.start()
    done = 0
    first_at = None
    try:
        while done < count:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            if not batches:
                continue
            if first_at is None:
                first_at = time.time()
            send = producer.send
            futures = []
            for records in batches.values():
                for r in records:
                    futures.append(await send(output_topic, key=r.key, value=r.value))
                done += len(records)
            await asyncio.gather(*futures)
            await consumer.commit()
        _write_report(report, first_at, time.time(), done)
    finally:
        await consumer.stop()
        await producer.stop()


def faust_app(kind: str, input_topic: str, output_topic: str | None, count: int, report: str, datadir: str,
              group: str, style: str = "iterate"):
    import faust

    from services.common.config import load_settings

    settings = load_settings()
    brokers = [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",") if h.strip()]
    app = faust.App(
        group,
        broker=brokers,
        autodiscover=False,
        web_enabled=False,
        topic_allow_declare=False,      # the bench created the topics
        topic_disable_leader=True,      # no leader topic to create
        datadir=datadir,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        # The producer tuned like every leadflow producer (services.common.kafka.make_producer):
        # acks=all (faust's default too), 5 ms linger, 256 KiB batches; otherwise faust's defaults.
        producer_acks=-1,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
    )
    source = app.topic(input_topic, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "first_at": None}

    def progress(n: int) -> None:
        if seen["first_at"] is None:
            seen["first_at"] = time.time()
        seen["n"] += n
        if seen["n"] >= count and not Path(report).exists():
            _write_report(report, seen["first_at"], time.time(), seen["n"])

    if kind == "faust-peer":
        from services.bench.dataset import lifecycle_step

        # The same decode/apply/encode functions as the lifecycle service: only the framework differs.
        step = lifecycle_step()
        sink = app.topic(output_topic, key_serializer="raw", value_serializer="raw")

        @app.agent(source)
        async def lifecycle(stream):
            async for event in stream.events():
                record = step(event.message.offset, event.value)
                if record is not None:
                    await sink.send(key=event.key, value=record)
                progress(1)
    elif style == "take":
        @app.agent(source)
        async def floor_batches(stream):
            # As the SLA monitor consumes: batches of up to 1000 events or what came within 0.2 s.
            async for events in stream.take_events(1000, within=0.2):
                progress(len(events))
    else:
        @app.agent(source)
        async def floor(stream):
            async for _value in stream:
                progress(1)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.bench.workers")
    parser.add_argument("kind", choices=("passthrough", "faust-peer", "faust-floor"))
    parser.add_argument("--input", required=True)
    parser.add_argument("--output")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--datadir", default=".")
    parser.add_argument("--style", choices=("iterate", "take"), default="iterate",
                        help="faust-floor: `async for` per event, or stream.take_events batches")
    args = parser.parse_args(argv)
    _start_profile()
    if args.kind == "passthrough":
        asyncio.run(passthrough(args.input, args.output, args.count, args.report, args.group))
        return 0
    import faust

    app = faust_app(args.kind, args.input, args.output, args.count, args.report, args.datadir, args.group,
                    args.style)
    # loglevel info: at faust's default (warn) its terminal spinner sets the root logger to DEBUG,
    # so every aiokafka debug call builds a LogRecord: the peer is not charged for that.
    worker = faust.Worker(app, loglevel="info", quiet=True)
    sys.argv = [sys.argv[0]]
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
