"""The SLA monitor's fast lifecycle_record reader (services/sla_monitor/wire.py) gives exactly the
Transition of the codec path (records.transition_from_avro over AvroCodec), and declines (None)
whatever it does not take, so the codec decodes or explains it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.bench.traffic import generate_events
from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.envelope import Event, parse_event
from services.lifecycle.domain import Transition
from services.sla_monitor.records import transition_from_avro
from services.sla_monitor.wire import LifecycleReader


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec("lifecycle_record")


def record_of(t: Transition) -> dict:
    return {
        "lead_id": t.lead_id, "event_id": t.event_id, "version": t.version, "from_stage": t.from_stage,
        "to_stage": t.to_stage, "ignored": t.ignored, "event": event_to_avro(t.event), "channel": t.channel,
        "segment": t.segment, "fit": t.fit, "owner": t.owner, "team": t.team,
    }


def both_ways(codec: AvroCodec, message: bytes):
    fast = LifecycleReader(codec).read(message)
    return fast, transition_from_avro(codec.decode(message))


def test_bench_traffic_reads_the_same(codec):
    from services.lifecycle.domain import LeadLog

    reader = LifecycleReader(codec)
    assert reader.fast
    log = LeadLog()
    n = 0
    for raw in generate_events(3000, seed=11):
        t = log.apply(parse_event(raw) if isinstance(raw, dict) else raw)
        if t.version is None:
            continue
        message = codec.encode(record_of(t))
        fast = reader.read(message)
        assert fast is not None
        assert fast == transition_from_avro(codec.decode(message)) == t
        n += 1
    assert n > 1000


@pytest.mark.parametrize("event_id,lead_id,text", [
    ("e" * 200, "L" * 130, "x" * 70),          # multi-byte lengths
    ("ü-id", "lead-ñ", "source-\u2603"),        # non-ASCII
    ("", "L1", ""),                            # empty strings
])
def test_odd_strings(codec, event_id, lead_id, text):
    for at in (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=timezone.utc),
               datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
               datetime(2500, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=7)):
        event = Event(event_id, lead_id, "lead.assigned", at, text, {"owner": text, "n": [1, 2.5, None]})
        t = Transition(lead_id, event_id, 2**40, None, "mql", "backward", event, text, None, "good", "", text)
        fast, slow = both_ways(codec, codec.encode(record_of(t)))
        assert fast == slow == t


def test_declines_what_it_does_not_take(codec):
    reader = LifecycleReader(codec)
    event = Event("e1", "L1", "lead.created", datetime(2026, 1, 1, tzinfo=timezone.utc), "web", {})
    good = codec.encode(record_of(Transition("L1", "e1", 1, None, "new", None, event)))
    assert reader.read(good) is not None
    assert reader.read(good + b"\x00") is None                 # bytes left over
    assert reader.read(good[:-1]) is None                      # truncated
    assert reader.read(b"\xc3\x01" + b"\x00" * 8 + good[10:]) is None   # another fingerprint
    other = Event("e2", "L1", "lead.created", event.occurred_at, "web", {})
    mismatch = codec.encode(record_of(Transition("L1", "e1", 1, None, "new", None, other)))
    assert reader.read(mismatch) is None                       # the codec path explains it
    bad_json = good.replace(b"\x04{}", b"\x04{x")
    assert bad_json != good and reader.read(bad_json) is None


def test_id_parts_escape_as_quote_does():
    """records._part skips quote() for ids that need no escaping; the result is the same."""
    from urllib.parse import quote

    from services.sla_monitor.records import _part

    samples = ["", "L-1_a.b~c", "lead 1", "a/b", "50%", "é", "😀", "x@y.z", "\x00", "A" * 200]
    samples += [chr(c) for c in range(0, 0x800)]
    for value in samples:
        assert _part(value) == quote(value, safe="")
