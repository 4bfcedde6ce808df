"""The README's Kafka command-line example works: Kafka's own console producer (from the jars the
stack runs on) publishes a keyed JSON line to leadflow.inbound, and ingest forwards it to
leadflow.events."""
from __future__ import annotations

import asyncio
import json

import pytest

from services.common.avro_codec import AvroCodec, event_from_avro
from services.stack.kafka_node import CLASSPATH_CACHE, java_bin, resolve_classpath

from ingest_it_helpers import fast_options, ingest_client, read_topic

pytestmark = pytest.mark.stack

CODEC = AvroCodec("event_envelope")


async def test_kafka_console_producer_line_reaches_events(stack, settings):
    classpath = await asyncio.to_thread(resolve_classpath, CLASSPATH_CACHE)
    event = {"event_id": "console-1", "lead_id": "L-1", "type": "lead.created",
             "occurred_at": "2026-11-02T09:00:00+01:00", "source": "website",
             "payload": {"channel": "website", "segment": "smb"}}
    line = f"L-1|{json.dumps(event)}\n{'L-2|{broken'}\n"
    proc = await asyncio.create_subprocess_exec(
        java_bin(), "-cp", classpath, "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", settings.kafka_bootstrap, "--topic", settings.topics.inbound,
        "--property", "parse.key=true", "--property", "key.separator=|",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(line.encode()), 120)
    assert proc.returncode == 0, out.decode()[-2000:]

    async with ingest_client(settings, fast_options(consume_inbound=True)):
        [record] = await read_topic(settings, settings.topics.events, 1, settle=1.0)
        [dead] = await read_topic(settings, settings.topics.dlq, 1)
    assert record.key == b"L-1"
    assert event_from_avro(CODEC.decode(record.value)).event_id == "console-1"
    assert (dead.key, dead.value) == (b"L-2", b"{broken")
