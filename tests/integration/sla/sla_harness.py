"""Shared by the SLA monitor's integration and fault tests: lifecycle records onto the test's
lifecycle topic with a transactional producer, leadflow.sla read back as a read_committed consumer,
the service in-process or as a subprocess, and policies with short dues on a 24/7 calendar."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.config import Settings, settings_env
from services.common.envelope import Event
from services.common.kafka import lead_key, make_consumer, make_producer
from services.lifecycle.batch import lifecycle_record
from services.lifecycle.domain import run_log
from services.stack.process import free_port

REPO = Path(__file__).resolve().parents[3]

# speed_to_lead due a few seconds after the MQL on a calendar that is always open; the other
# clock SLAs keep their contract numbers.
SHORT_POLICY = """
description = "test: speed_to_lead due in {due}, always business time"

[calendars.always]
timezone = "UTC"
working_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
opens = "00:00"
closes = "24:00"

[slas.speed_to_lead]
due = "{due}"
business_time = true
calendar = "always"
scope = {{ channel = ["website"] }}

[slas.sales_acceptance]
business_days = 2

[slas.contact_attempts]
required_attempts = 6

[slas.closed_loop_feedback]
due = "90d"
business_time = false

[slas.marketing_weekly_volume]
target = 50

[slas.rep_monthly_volume]
target = 150
"""


def write_policy(folder: Path, due: str = "3s") -> Path:
    path = folder / f"policy-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(SHORT_POLICY.format(due=due), encoding="utf-8")
    return path


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def website_mql(lead_id: str, at: datetime, source: str = "website") -> list[Event]:
    """A website lead that becomes an MQL at `at`: starts speed_to_lead."""
    return [
        Event(f"{lead_id}-c", lead_id, "lead.created", at, source, {"channel": "website", "segment": "smb"}),
        Event(f"{lead_id}-m", lead_id, "lead.marketing_qualified", at, "hubspot", {"fit": "good"}),
    ]


def contact(lead_id: str, at: datetime, n: int = 1) -> Event:
    return Event(f"{lead_id}-a{n}", lead_id, "contact.attempted", at, "dialer", {"channel": "phone", "owner": "rep-1"})


def lifecycle_messages(events: Iterable[Event]) -> list[tuple[bytes, bytes]]:
    """(key, value) of the leadflow.lifecycle records the lifecycle service publishes for a log."""
    codec = AvroCodec("lifecycle_record")
    out = []
    for t in run_log(events):
        if t.version is None:
            continue  # duplicates are not published
        out.append((lead_key(t.lead_id), codec.encode(lifecycle_record(t, event_to_avro(t.event)))))
    return out


async def produce(settings: Settings, messages: Sequence[tuple[bytes, bytes]], *, abort: bool = False,
                  topic: str | None = None) -> None:
    """One Kafka transaction with the messages, committed (or aborted)."""
    producer: AIOKafkaProducer = make_producer(settings, transactional_id=f"test-lifecycle-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        await producer.begin_transaction()
        futures = [await producer.send(topic or settings.topics.lifecycle, key=k, value=v) for k, v in messages]
        await asyncio.gather(*futures)
        if abort:
            await producer.abort_transaction()
        else:
            await producer.commit_transaction()
    finally:
        await producer.stop()


async def read_sla(settings: Settings, timeout: float = 30.0) -> list[dict]:
    """Every record a read_committed consumer sees on leadflow.sla, decoded, with `_key`,
    `_partition`, `_offset` and `_outbox_id` added."""
    codec = AvroCodec("sla_outcome")
    topic = settings.topics.sla
    consumer = make_consumer(settings, None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: still behind on {sorted(tp.partition for tp in pending)}")
            batches = await consumer.getmany(*pending, timeout_ms=300)
            for tp, records in batches.items():
                for r in records:
                    rec = codec.decode(r.value)
                    headers = dict(r.headers or ())
                    rec.update(_key=r.key, _partition=tp.partition, _offset=r.offset,
                               _outbox_id=int(headers["leadflow-outbox-id"]))
                    out.append(rec)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return sorted(out, key=lambda r: r["_outbox_id"])
    finally:
        await consumer.stop()


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    """Await an (async or plain) predicate until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        await asyncio.sleep(interval)


async def sla_records_where(settings: Settings, **match) -> list[dict]:
    return [r for r in await read_sla(settings) if all(r.get(k) == v for k, v in match.items())]


def service_env(settings: Settings, policy: Path | None, metrics_port: int | None = None, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(settings_env(settings.with_changes(
        sla_metrics_port=metrics_port or free_port(), sla_policy_file=str(policy) if policy else "",
        instance_id=f"test-{uuid.uuid4().hex[:6]}")))
    env["LEADFLOW_SLA_METRICS_HOST"] = "127.0.0.1"
    env.update(extra)
    return env


class MonitorProcess:
    """`python -m services.sla_monitor` as a child process, stderr kept in a file."""

    def __init__(self, env: dict, log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.sla_monitor"], cwd=REPO, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def breaches_per_clock(records: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        if r["kind"] == "breached":
            counts[r["clock_id"]] = counts.get(r["clock_id"], 0) + 1
    return counts


def later(seconds: float) -> datetime:
    return utc_now() + timedelta(seconds=seconds)
