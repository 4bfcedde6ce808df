"""A broker that is down or frozen makes HTTP answer 503 with Retry-After, never 202; once the broker is
back, the service accepts again by itself, and everything it answered 202 for is on the topic."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import psutil
import pytest

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.config import settings_env
from services.common.kafka import ensure_topics
from services.stack.kafka_node import KafkaNode
from services.stack.process import free_port, read_pid

from ingest_it_helpers import fast_options, ingest_client, read_topic

pytestmark = pytest.mark.stack

CODEC = AvroCodec("event_envelope")
REPO = Path(__file__).resolve().parents[3]


def event(i: int) -> dict:
    return {"event_id": f"out-{i}", "lead_id": f"L-{i % 5}", "type": "lead.activity",
            "occurred_at": "2026-11-02T10:00:00Z", "source": "website", "payload": {"kind": "page_view"}}


async def post(client, events) -> tuple[int, dict, dict]:
    resp = await client.post("/v1/events", json=events)
    return resp.status, await resp.json(), dict(resp.headers)


async def test_no_broker_listening_means_503_and_not_ready(settings):
    dead = settings.with_changes(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with ingest_client(dead, fast_options(consume_inbound=True), wait_kafka=False) as client:
        for i in range(3):
            status, body, headers = await post(client, [event(i)])
            assert status == 503, body
            assert body["error"] == "unavailable"
            assert int(headers["Retry-After"]) >= 1
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["status"] == "not_ready"
        resp = await client.get("/healthz")
        assert resp.status == 200
        # invalid events are still refused without Kafka: validation does not need it
        status, body, _ = await post(client, [{"event_id": "x"}])
        assert status == 422


async def test_broker_stopped_then_restarted(stack, settings):
    node = KafkaNode(stack.home / f"outage-kafka-{uuid.uuid4().hex[:6]}", free_port(), free_port(), heap="384m")
    await asyncio.to_thread(node.start)
    try:
        s = settings.with_changes(kafka_bootstrap=node.bootstrap)
        await ensure_topics(s)
        accepted: list[str] = []
        async with ingest_client(s, fast_options(consume_inbound=False, ack_timeout_s=3.0)) as client:
            status, body, _ = await post(client, [event(0), event(1)])
            assert status == 202 and body["accepted"] == 2
            accepted += ["out-0", "out-1"]

            await asyncio.to_thread(node.stop)
            statuses = []
            for i in range(2, 6):
                status, body, headers = await post(client, [event(i)])
                statuses.append(status)
                assert status == 503, f"a request while the broker is down was answered {status}: {body}"
                assert int(headers["Retry-After"]) >= 1
            resp = await client.get("/readyz")
            assert resp.status == 503

            await asyncio.to_thread(node.start)
            deadline = time.monotonic() + 90
            i = 100
            while True:
                status, body, _ = await post(client, [event(i)])
                assert status in (202, 503), (status, body)
                if status == 202:
                    accepted.append(f"out-{i}")
                    break
                assert time.monotonic() < deadline, "ingest did not recover after the broker came back"
                i += 1
                await asyncio.sleep(0.5)
            resp = await client.get("/readyz")
            assert resp.status == 200

        records = await read_topic(s, s.topics.events, len(accepted), timeout=60, settle=1.0)
        on_topic = {event_from_avro(CODEC.decode(r.value)).event_id for r in records}
        assert set(accepted) <= on_topic, "every event answered 202 is on the topic"
    finally:
        await asyncio.to_thread(node.stop)
        shutil.rmtree(node.home, ignore_errors=True)


async def test_frozen_broker_under_a_steady_stream_503s_and_memory_stays_flat(stack, settings):
    """A broker that stops answering (SIGSTOP: slower than slow) while 8 clients keep posting
    200-event requests to the ingest process: every answer is 202 or 503 with Retry-After, the
    process's resident memory stays flat through the outage, and once the broker answers again
    every event answered 202 is on the topic."""
    node = KafkaNode(stack.home / f"frozen-kafka-{uuid.uuid4().hex[:6]}", free_port(), free_port(), heap="384m")
    await asyncio.to_thread(node.start)
    ingest = None
    try:
        s = settings.with_changes(kafka_bootstrap=node.bootstrap, ingest_port=free_port())
        await ensure_topics(s)
        env = {**os.environ, **settings_env(s), "LEADFLOW_INGEST_CONSUME_INBOUND": "false",
               "LEADFLOW_INGEST_ACK_TIMEOUT_S": "2", "LEADFLOW_INGEST_PRODUCER_REQUEST_TIMEOUT_MS": "3000",
               "LEADFLOW_INGEST_KAFKA_RETRY_S": "0.5", "LEADFLOW_INGEST_MAX_INFLIGHT_BYTES": str(8 << 20)}
        ingest = subprocess.Popen([sys.executable, "-m", "services.ingest"], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{s.ingest_port}"
        rss = psutil.Process(ingest.pid)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with session.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline and ingest.poll() is None, "ingest did not get ready"
                await asyncio.sleep(0.3)
            accepted: list[str] = []
            answers: Counter = Counter()
            serial = iter(range(10 ** 9))

            async def client(until: float) -> None:
                while time.monotonic() < until:
                    batch = [event(next(serial)) for _ in range(200)]
                    for e in batch:
                        e["event_id"] = f"{e['event_id']}-{uuid.uuid4().hex[:6]}"
                    async with session.post(f"{base}/v1/events", json=batch) as resp:
                        answers[resp.status] += 1
                        assert resp.status in (202, 503), (resp.status, await resp.text())
                        if resp.status == 202:
                            accepted.extend(e["event_id"] for e in batch)
                        else:
                            assert int(resp.headers["Retry-After"]) >= 1
                            await asyncio.sleep(0.05)

            async def stream(seconds: float) -> None:
                until = time.monotonic() + seconds
                await asyncio.gather(*(client(until) for _ in range(8)))

            await stream(5)                           # warm: everything flows
            warm_rss = rss.memory_info().rss
            os.kill(read_pid(node.pid_file), signal.SIGSTOP)
            samples: list[int] = []
            sampler_stop = asyncio.Event()

            async def sample() -> None:
                while not sampler_stop.is_set():
                    samples.append(rss.memory_info().rss)
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample())
            frozen_answers = Counter(answers)
            await stream(20)
            sampler_stop.set()
            await sampler
            during = answers - frozen_answers
            os.kill(read_pid(node.pid_file), signal.SIGCONT)
            await stream(15)                          # and after: it takes events again
        third = len(samples) // 3
        peak = max(samples)
        print(f"\ningest RSS: {warm_rss / 2**20:.0f} MiB before the freeze, peak {peak / 2**20:.0f} MiB during "
              f"20 s of a frozen broker under 8 clients ({sum(during.values())} requests: {dict(during)})")
        assert during[503] > 0, "the frozen broker was not felt"
        assert peak < warm_rss + (150 << 20), "memory grew by more than 150 MiB during the outage"
        assert max(samples[-third:]) < max(samples[:third]) + (40 << 20), "memory kept growing during the outage"
        assert answers[202] > frozen_answers[202] + during[202], "ingest did not take events after the broker came back"
        records = await read_topic(s, s.topics.events, len(accepted), timeout=90, settle=1.0)
        on_topic = {event_from_avro(CODEC.decode(r.value)).event_id for r in records}
        assert set(accepted) <= on_topic, f"{len(set(accepted) - on_topic)} events answered 202 are not on the topic"
    finally:
        if ingest is not None:
            ingest.terminate()
            try:
                ingest.wait(30)
            except subprocess.TimeoutExpired:
                ingest.kill()
        pid = read_pid(node.pid_file)
        if pid:
            os.kill(pid, signal.SIGCONT)
        await asyncio.to_thread(node.stop)
        shutil.rmtree(node.home, ignore_errors=True)
