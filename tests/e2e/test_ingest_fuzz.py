"""Fuzzing `POST /v1/events` of the real ingest process (on the real Kafka) with hostile requests:
events whose text is SQL, script, control characters, bidi and zero-width characters or anything
Unicode has; huge and tiny numbers; deep nesting; broken JSON; invalid UTF-8; oversized bodies,
too many events, oversized events; unknown content types; NDJSON mixing all of that.

- No request is answered 5xx, and the process neither dies nor reaches its 500 handler.
- Each answer is the one the body calls for: garbage is 400/413/415/422, never 202.
- Every event answered as accepted is on leadflow.events with exactly the text that was sent
  (ids, source, type, every payload string and number), and nothing else is; and the lifecycle
  service stores each in its event store (lead_events) with that same text.

The count is LEADFLOW_FUZZ_REQUESTS (1,000 in `make test`; `make test-fuzz` sends 10,000 and
prints the figures).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
import requests
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings, strategies as st

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.config import Topics
from services.common.kafka import ensure_topics, make_consumer
from services.lifecycle.service import LifecycleOptions, LifecycleService
from services.ingest.request_body import MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES
from services.stack.process import free_port
from tests.e2e.ingest_process import running_ingest
from tests.conftest import make_test_settings

pytestmark = pytest.mark.stack

REQUESTS = int(os.environ.get("LEADFLOW_FUZZ_REQUESTS", "1000"))
CODEC = AvroCodec("event_envelope")
JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"

HOSTILE = [
    "'; DROP TABLE lead_events; --", "\" OR 1=1 --", "1); DELETE FROM leads WHERE (1=1", "$$; TRUNCATE sla_clocks; $$",
    "<script>alert(document.cookie)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)",
    "${jndi:ldap://127.0.0.1/a}", "{{7*7}}", "%s%s%n%x", "../../../../etc/passwd", "\\x00\\u0000",
    "\r\nSet-Cookie: session=stolen", "\x1b[2J\x1b[31mred", "\x7f\x08\x0b\x0c", "\u202eevil\u202c", "\u200b\ufeff\u2060",
    "Überprüfung 线索 ação 🚀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢" * 8, "null", "true", "[]", "{}", "\\", "\"", "'", "`", " ", "\t",
]
# Any code point but NUL and lone surrogates: those are refused by design (PostgreSQL cannot
# store them); the "refused" strategies below send them.
STORABLE = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
hostile_text = st.one_of(st.sampled_from(HOSTILE), st.text(STORABLE, min_size=1, max_size=40),
                         st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE), st.text(STORABLE, max_size=10)))
numbers = st.one_of(
    st.integers(), st.integers(min_value=-(10 ** 300), max_value=10 ** 300),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2 ** 63, -(2 ** 63) - 1]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, hostile_text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)),
    max_leaves=16,
)


def _nested(depth: int, leaf) -> object:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


@st.composite
def event(draw, tag: str, serial) -> dict:
    """A well-formed event whose every text is hostile: the service must store it as sent."""
    now = datetime.now(timezone.utc)
    kind = draw(st.sampled_from(["lead.created", "lead.activity", "lead.scored", "deal.won"]))
    payload = draw(st.dictionaries(hostile_text.filter(lambda k: k not in {"kind", "score", "fit", "revenue",
                                                                            "channel", "segment", "email", "company",
                                                                            "campaign", "country", "asset", "helpful",
                                                                            "currency"}),
                                   json_values, max_size=4))
    if kind == "lead.created":
        payload.update({"email": draw(hostile_text), "company": draw(hostile_text), "segment": draw(hostile_text)})
    elif kind == "lead.activity":
        payload.update({"kind": draw(hostile_text), "asset": draw(hostile_text)})
    elif kind == "lead.scored":
        payload.update({"score": draw(st.integers(-(2 ** 31), 2 ** 31 - 1))})
    else:
        payload.update({"revenue": draw(st.one_of(st.integers(0, 10 ** 18), st.floats(0, 1e15))),
                        "currency": draw(hostile_text)})
    if draw(st.booleans()):
        payload["deep"] = _nested(draw(st.integers(1, 200)), draw(json_values))
    seconds = draw(st.integers(0, 10 * 365 * 86400))
    return {
        "event_id": f"fz{tag}-{next(serial)}-{draw(hostile_text)}"[:128],
        "lead_id": draw(hostile_text)[:128],
        "type": kind,
        "occurred_at": (now - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "source": draw(hostile_text)[:64],
        "payload": payload,
    }


def _dumps(value, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")


@st.composite
def request(draw, tag: str, serial):
    """(kind, body, content type, events sent or None): `events` when the body is well-formed
    events, so what was accepted can be checked on the topic."""
    # Shapes with little random content (deep, huge_number, too_many) come up only as often as they
    # have distinct forms: hypothesis does not send the same example twice.
    kind = draw(st.sampled_from(["deep", "huge_number", "too_many", "object", "array", "ndjson", "object", "array",
                                 "ndjson", "mixed", "garbage", "bad_utf8", "oversized", "big_event", "content_type",
                                 "refused_text"]))
    ascii_only = draw(st.booleans())
    if kind == "object":
        e = draw(event(tag, serial))
        return kind, _dumps(e, ascii_only), JSON_TYPE, [e]
    if kind == "array":
        events = draw(st.lists(event(tag, serial), min_size=1, max_size=5))
        return kind, _dumps(events, ascii_only), JSON_TYPE, events
    if kind == "ndjson":
        events = draw(st.lists(event(tag, serial), min_size=1, max_size=5))
        return kind, b"\n".join(_dumps(e, ascii_only) for e in events) + b"\n", NDJSON_TYPE, events
    if kind == "mixed":
        # NDJSON lines: events, and lines that are not events at all; each judged on its own.
        lines, events = [], []
        for item in draw(st.lists(st.one_of(event(tag, serial), st.binary(max_size=60), json_values), min_size=1, max_size=6)):
            if isinstance(item, dict) and "event_id" in item:
                events.append(item)
                lines.append(_dumps(item, ascii_only))
            else:
                line = item.replace(b"\n", b" ") if isinstance(item, bytes) else _dumps(item, True)
                if not line.strip(b" \t\r"):
                    continue    # a blank line is no event: it takes no index
                events.append(None)
                lines.append(line)
        return kind, b"\n".join(lines), NDJSON_TYPE, events
    if kind == "garbage":
        return kind, draw(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))), \
            draw(st.sampled_from([JSON_TYPE, NDJSON_TYPE])), None
    if kind == "bad_utf8":
        e = _dumps(draw(event(tag, serial)), False)
        cut = draw(st.integers(0, len(e)))
        bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]))
        return kind, e[:cut] + bad + e[cut:], JSON_TYPE, None
    if kind == "deep":
        depth = draw(st.sampled_from([1_000, 10_000, 100_000, 300_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        body = opener * depth + b"1" + closer * depth
        return kind, body, draw(st.sampled_from([JSON_TYPE, NDJSON_TYPE])), None
    if kind == "huge_number":
        digits = draw(st.sampled_from([5_000, 50_000, 500_000]))
        number = draw(st.sampled_from([b"9" * digits, b"1e" + b"9" * 20, b"-" + b"9" * digits + b".5e-99999"]))
        return kind, b'{"event_id": "x", "payload": {"n": ' + number + b"}}", JSON_TYPE, None
    if kind == "oversized":
        return kind, b'["' + b"a" * (MAX_REQUEST_BYTES + draw(st.integers(0, 1000))) + b'"]', JSON_TYPE, None
    if kind == "too_many":
        return kind, b"[" + b",".join([b"{}"] * (MAX_EVENTS_PER_REQUEST + 1)) + b"]", JSON_TYPE, None
    if kind == "big_event":
        e = draw(event(tag, serial))
        e["payload"]["blob"] = "x" * (MAX_EVENT_BYTES + 1)
        return kind, _dumps(e, True), JSON_TYPE, None
    if kind == "content_type":
        e = draw(event(tag, serial))
        ctype = draw(st.sampled_from(["text/plain", "multipart/form-data; boundary=x", "application/xml",
                                      "application/x-www-form-urlencoded", "*/*", "application/json-patch+json"]))
        return kind, _dumps(e, True), ctype, None
    # refused_text: NUL or a lone surrogate somewhere; refused with the field named.
    e = draw(event(tag, serial))
    bad = draw(st.sampled_from(["\x00", "\ud800", "\udfff"]))
    where = draw(st.sampled_from(["event_id", "lead_id", "source", "payload"]))
    if where == "payload":
        e["payload"]["note"] = "a" + bad
    else:
        e[where] = e[where][:60] + bad
    return kind, json.dumps(e, ensure_ascii=True).encode(), JSON_TYPE, None


NOT_ACCEPTED = {"garbage": {400, 422}, "bad_utf8": {400}, "deep": {400, 413, 422}, "huge_number": {400, 413, 422},
                "oversized": {413}, "too_many": {413}, "big_event": {413}, "content_type": {415},
                "refused_text": {422}}


@pytest.fixture(scope="module")
def ingest(stack, tmp_path_factory):
    """`python -m services.ingest` on a free port with topics of its own, open mode (no keys), so
    that every valid event goes through to Kafka."""
    settings = make_test_settings(stack)
    asyncio.run(ensure_topics(settings))
    port = free_port()
    log_path = tmp_path_factory.mktemp("fuzz") / "ingest.log"
    env = {"LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "LEADFLOW_TOPIC_PREFIX": settings.topics.prefix, "LEADFLOW_TOPIC_PARTITIONS": "3",
           "LEADFLOW_INGEST_HOST": "127.0.0.1", "LEADFLOW_INGEST_PORT": str(port),
           "LEADFLOW_INGEST_API_KEYS": "", "LEADFLOW_INGEST_HMAC_SECRET": "",
           "LEADFLOW_INGEST_CONSUME_INBOUND": "false", "LEADFLOW_INSTANCE_ID": f"fuzz-{uuid.uuid4().hex[:6]}"}
    with running_ingest(env, port, log_path) as (base, proc):
        yield settings, base, proc, log_path


def _accepted_events(events: list | None, answer: dict) -> list[dict]:
    refused = {e["index"] for e in answer["errors"]}
    return [e for i, e in enumerate(events or []) if i not in refused and e is not None]


async def _read_events(topics: Topics, settings, count: int, timeout: float = 120) -> list:
    consumer = make_consumer(settings, None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topics.events)
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topics.events)
        tps = [TopicPartition(topics.events, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, tps)) and len(records) >= count:
                break
        return records
    finally:
        await consumer.stop()


def _normal(value):
    """JSON's meaning of a value: what a reader of the stored JSON gets (ints stay exact)."""
    return json.loads(json.dumps(value))


async def test_fuzzed_requests_never_5xx_and_accepted_text_is_stored_exactly(ingest):
    settings_, base, proc, log_path = ingest
    tag = uuid.uuid4().hex[:6]
    serial = iter(range(10 ** 9))
    statuses: Counter = Counter()
    by_kind: Counter = Counter()
    sent_accepted: dict[str, dict] = {}
    failures: list[str] = []
    session = requests.Session()

    @given(req=request(tag, serial))
    @settings(max_examples=REQUESTS, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def send(req):
        kind, body, ctype, events = req
        resp = session.post(f"{base}/v1/events", data=body, headers={"Content-Type": ctype}, timeout=60)
        statuses[resp.status_code] += 1
        by_kind[kind] += 1
        if resp.status_code >= 500:
            failures.append(f"{kind}: {resp.status_code} {resp.text[:300]} for {body[:300]!r}")
            return
        if kind in NOT_ACCEPTED and resp.status_code not in NOT_ACCEPTED[kind]:
            failures.append(f"{kind}: answered {resp.status_code} {resp.text[:300]} for {body[:300]!r}")
            return
        if resp.status_code in (202, 422) and events is not None:
            for e in _accepted_events(events, resp.json()):
                sent_accepted[e["event_id"]] = e

    started = time.monotonic()
    await asyncio.to_thread(send)   # hypothesis drives a blocking client
    sent = sum(statuses.values())
    elapsed = time.monotonic() - started
    print(f"\nfuzz: {sent} requests in {elapsed:.0f}s, statuses {dict(sorted(statuses.items()))}, "
          f"kinds {dict(sorted(by_kind.items()))}, {len(sent_accepted)} events accepted")
    assert failures == [], "\n".join(failures[:10])
    assert sent >= REQUESTS * 0.95, f"only {sent} requests were generated"
    assert statuses[202] > 0 and statuses[400] > 0 and statuses[413] > 0 and statuses[415] > 0 and statuses[422] > 0
    assert proc.poll() is None, "the ingest process died"
    log = log_path.read_text(errors="replace")
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
    metrics = session.get(f"{base}/metrics", timeout=5).text
    assert 'leadflow_errors_total{kind="internal",service="ingest"} 0.0' in metrics

    records = await _read_events(settings_.topics, settings_, len(sent_accepted))
    stored = {}
    for record in records:
        e = event_from_avro(CODEC.decode(record.value))
        assert e.event_id not in stored, f"event {e.event_id!r} is on the topic twice"
        stored[e.event_id] = e
    assert set(stored) == set(sent_accepted), (
        f"missing {len(set(sent_accepted) - set(stored))}, unexpected {len(set(stored) - set(sent_accepted))}")
    mismatches = []
    for event_id, sent_event in sent_accepted.items():
        e = stored[event_id]
        got = {"event_id": e.event_id, "lead_id": e.lead_id, "type": e.type, "source": e.source, "payload": e.payload}
        want = {k: sent_event[k] for k in ("event_id", "lead_id", "type", "source")} | {"payload": _normal(sent_event["payload"])}
        if got != want:
            mismatches.append(f"{event_id!r}: sent {want!r:.300} stored {got!r:.300}")
    assert mismatches == [], "\n".join(mismatches[:10])

    rows = await _through_the_event_store(settings_, len(sent_accepted))
    assert set(rows) == set(sent_accepted), f"missing from lead_events: {len(set(sent_accepted) - set(rows))}"
    for event_id, sent_event in sent_accepted.items():
        row = rows[event_id]
        got = {k: row[k] for k in ("event_id", "lead_id", "type", "source")}
        if got != {k: sent_event[k] for k in got} or not _same_json(json.loads(row["payload"]), sent_event["payload"]):
            mismatches.append(f"{event_id!r}: sent {sent_event!r:.300} stored {dict(row)!r:.300}")
    assert mismatches == [], "\n".join(mismatches[:10])
    print(f"fuzz: {sent} requests, 0 answered 5xx, 0 crashes, {len(stored)} accepted events on leadflow.events "
          f"and in the event store exactly as sent")


def _same_json(a, b) -> bool:
    """Equal as JSON: PostgreSQL's jsonb keeps a number as a decimal (1e308 reads back as 1 and
    308 zeros), so numbers are equal when they are the same double; text must be identical."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


async def _through_the_event_store(settings, count: int, timeout: float = 180) -> dict:
    """The lifecycle service (in process, as its own PostgreSQL role) over the fuzzed events;
    the lead_events rows by event_id. Nothing may land in unreadable_records."""
    service = LifecycleService(settings, LifecycleOptions(serve_metrics=False))
    await service.start()
    task = asyncio.create_task(service.run())
    conn = await asyncpg.connect(settings.postgres_dsn.reveal(), server_settings={"search_path": settings.postgres_schema})
    try:
        deadline = time.monotonic() + timeout
        while (stored := await conn.fetchval("SELECT count(*) FROM lead_events")) < count:
            assert not task.done(), task
            assert time.monotonic() < deadline, f"the event store holds {stored} of {count} events"
            await asyncio.sleep(0.5)
        unreadable = await conn.fetch("SELECT kafka_offset, error FROM unreadable_records")
        assert unreadable == [], unreadable[:5]
        return {r["event_id"]: r for r in await conn.fetch(
            "SELECT event_id, lead_id, type, source, payload::text AS payload FROM lead_events")}
    finally:
        service.request_stop()
        await asyncio.wait_for(task, 60)
        await service.close()
        await conn.execute(f'DROP SCHEMA "{settings.postgres_schema}" CASCADE')
        await conn.close()
