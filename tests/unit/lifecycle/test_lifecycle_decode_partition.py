"""The per-partition decoder, the wire reader's payload cache and the splice's joined encodings
give exactly what the per-record and codec paths give."""
from __future__ import annotations

from collections import namedtuple
from datetime import datetime, timezone

from services.common.avro_codec import AvroCodec, event_from_avro, event_to_avro
from services.common.envelope import Event
from services.lifecycle.batch import decode_partition, decode_record, lifecycle_record
from services.lifecycle.domain import LeadLog
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder

IN = AvroCodec("event_envelope")
OUT = AvroCodec("lifecycle_record")
Record = namedtuple("Record", "offset key value")
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def _message(event_id: str, lead_id: str = "L1", etype: str = "lead.scored", payload=None) -> bytes:
    return IN.encode(event_to_avro(Event(event_id, lead_id, etype, T0, "crm", payload or {"score": 5, "fit": "good"})))


def _same(a, b) -> bool:
    return (a.offset, a.key, a.value, a.event, a.error, a.payload_json, a.envelope) == \
        (b.offset, b.key, b.value, b.event, b.error, b.payload_json, b.envelope)


def test_decode_partition_equals_decode_record_per_record():
    good = _message("e1")
    records = [
        Record(10, b"L1", good),
        Record(11, b"L1", _message("e2", payload={"nested": {"a": [1, None]}, "fit": "poor"})),
        Record(12, b"L1", good[:-3]),                                   # corrupt: the codec explains
        Record(13, None, None),                                         # no value
        Record(14, b"L1", _message("e\x003")),                          # a NUL: refused
        Record(15, b"L2", _message("e" * 90, "L" * 70)),                # long strings
        Record(16, b"L1", good[:2] + bytes(8) + good[10:]),             # another writer schema
    ]
    for codec in (EnvelopeDecoder(IN), IN):
        batch = decode_partition(codec, records)
        single = [decode_record(codec, r.offset, r.key, r.value) for r in records]
        assert len(batch) == len(single) == len(records)
        assert all(_same(a, b) for a, b in zip(batch, single))
    assert batch[2].event is None and batch[2].error.startswith("decode:")
    assert batch[4].error == "an id, type or source holds a NUL character"


def test_repeated_payloads_give_each_event_its_own_equal_dict():
    decoder = EnvelopeDecoder(IN)
    m1, m2 = _message("a"), _message("b")
    e1, _ = decoder.read(m1)
    e1.payload["fit"] = "changed"        # a consumer mutating its event must not leak into the next
    e2, text = decoder.read(m2)
    assert e2.payload == {"score": 5, "fit": "good"} and e2.payload is not e1.payload
    assert e2 == event_from_avro(IN.decode(m2)) and text == IN.decode(m2)["payload_json"]
    nested = _message("c", payload={"x": {"y": [1]}})
    n1, _ = decoder.read(nested)
    n2, _ = decoder.read(_message("d", payload={"x": {"y": [1]}}))
    assert n1.payload == n2.payload and n1.payload["x"] is not n2.payload["x"]


def test_splice_equals_the_codec_for_varied_attributes():
    decoder = EnvelopeDecoder(IN)
    encoder = LifecycleEncoder(OUT, IN)
    log = LeadLog()
    events = []
    for i, (etype, payload) in enumerate([
        ("lead.created", {"channel": "web", "segment": "smb"}), ("lead.scored", {"score": 1, "fit": "good"}),
        ("lead.assigned", {"owner": "ana", "team": "emea"}), ("lead.information_qualified", {}),
        ("deal.won", {"revenue": 3}), ("lead.created", {}), ("lead.assigned", {"owner": "bo", "team": "us"}),
    ] * 3):
        events.append(_message(f"e{i}", f"L{i % 4}", etype, payload))
    for m in events:
        event, _ = decoder.read(m)
        t = log.apply(event)
        assert encoder.splice(t, m) == OUT.encode(lifecycle_record(t, IN.decode(m)))
