"""The lifecycle service's fast Avro paths are byte-identical to the codec (no stack needed)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from services.common.avro_codec import AvroCodec, AvroCodecError, event_to_avro
from services.common.envelope import Event
from services.lifecycle.batch import PartitionInput, decode_record, jsonb_text, lifecycle_record, plan_round
from services.lifecycle.domain import run_log
from services.lifecycle.synthetic import START, lead_stream
from services.lifecycle.wire import FLOAT_EXACT_US, UTC, EnvelopeDecoder, LifecycleEncoder

IN = AvroCodec("event_envelope")
OUT = AvroCodec("lifecycle_record")


def _odd_events(n: int) -> list[Event]:
    """Events with long and non-ASCII ids, odd payloads, far-away times."""
    rng = random.Random(5)
    alphabet = "aé€𝄞-_ 0\u200b"
    events = []
    for i in range(n):
        lead = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 128)))
        events.append(Event(
            f"ev-{i}-" + "x" * rng.randint(0, 100), lead, rng.choice(["lead.created", "lead.assigned", "deal.won"]),
            START + timedelta(microseconds=rng.randint(-10**15, 10**15)), "s" * rng.randint(1, 64),
            {"owner": "Ünïcode " * rng.randint(0, 40), "team": "t", "nested": {"a": [1, 2.5, None, True]},
             "revenue": rng.randint(0, 10**12)},
        ))
    return events


@pytest.mark.parametrize("events", [lead_stream(300, seed=2), _odd_events(300)], ids=["synthetic", "odd"])
def test_fast_paths_equal_the_codec(events):
    decoder = EnvelopeDecoder(IN)
    encoder = LifecycleEncoder(OUT, IN)
    assert decoder.fast and encoder.fast
    messages = [IN.encode(event_to_avro(e)) for e in events]
    envelopes = [decoder.decode(m) for m in messages]
    assert envelopes == [IN.decode(m) for m in messages]
    decoded = [decode_record(decoder, i, None, m) for i, m in enumerate(messages)]
    transitions = [t for t in run_log([d.event for d in decoded]) if t.version is not None]
    by_id = {d.event.event_id: (d.envelope, d.value) for d in decoded}
    for t in transitions:
        envelope, message = by_id[t.event_id]
        assert encoder.encode(t, envelope, message) == OUT.encode(lifecycle_record(t, envelope))


def test_other_writer_schema_or_corrupt_message_goes_to_the_codec():
    decoder = EnvelopeDecoder(IN)
    encoder = LifecycleEncoder(OUT, IN)
    event = lead_stream(1, seed=3)[0]
    message = IN.encode(event_to_avro(event))
    foreign = message[:2] + bytes(8) + message[10:]
    with pytest.raises(AvroCodecError):
        decoder.decode(foreign)
    with pytest.raises(AvroCodecError):
        decoder.decode(message[:-1])
    with pytest.raises(AvroCodecError):
        decoder.decode(message + b"\x00")
    bad = decode_record(decoder, 7, b"k", message[:-3])
    assert bad.event is None and bad.error.startswith("decode:")
    # An envelope that did not come in the current schema is encoded by the codec, same bytes.
    t = next(iter(run_log([event])))
    envelope = IN.decode(message)
    assert encoder.encode(t, envelope, foreign) == encoder.encode(t, envelope, message) == \
        OUT.encode(lifecycle_record(t, envelope))


def test_payloads_postgres_jsonb_would_refuse_are_cleaned_for_the_store_only():
    assert jsonb_text('{"a":"b\\u00e9"}') == '{"a":"b\\u00e9"}'        # untouched
    assert jsonb_text('{"a":"x\\u0000y"}') == '{"a":"x\ufffdy"}'
    assert jsonb_text('{"a":"\\ud800"}') == '{"a":"\ufffd"}'
    assert jsonb_text('{"a":"\\ud83d\\ude00"}') == '{"a":"\U0001F600"}'  # a valid pair survives


def _edge_messages() -> list[bytes]:
    """Messages every branch of the fast reader meets, and some it must leave to the codec."""
    t0 = datetime(2026, 11, 2, 8, 0, 0, 250_000, tzinfo=timezone.utc)
    events = [
        Event("e1", "lead-1", "lead.created", t0, "website", {"channel": "website", "segment": "smb"}),
        Event("e1", "lead-1", "lead.scored", t0, "hubspot", {"score": 5, "fit": "poor"}),          # duplicate id
        Event("e2", "L" * 70, "lead.created", t0, "website", {}),                                  # 2-byte length
        Event("e3", "lead-1", "lead.scored", datetime(1969, 7, 20, 20, 17, tzinfo=timezone.utc), "hubspot",
              {"score": 50, "fit": "good"}),                                                       # before 1970
        Event("e4", "lead-1", "lead.activity", t0, "hubspot", {"kind": "download", "blob": "x" * 9000}),
        Event("e5", "lead-ü", "lead.assigned", t0 + timedelta(days=1), "crm", {"owner": "Zoë", "team": "ñ"}),
        Event("e6", "lead-2", "deal.won", datetime(2300, 1, 1, tzinfo=timezone.utc), "crm", {"revenue": 1}),
        Event("e7", "lead-3", "lead.created", datetime(1970, 1, 1, tzinfo=timezone.utc), "crm", {}),   # time 0
        Event("", "lead-4", "lead.created", t0, "crm", {}),                                        # empty id
        Event("e8", "lead-\x00", "lead.created", t0, "crm", {}),                                   # NUL in an id
        Event("e9", "lead-5", "lead.created", t0, "cr\x00m", {}),
        Event("e10", "lead-6", "lead.created", t0, "crm", {"note": "a\x00b", "deep": [[[1]]]}),
    ]
    messages = [IN.encode(event_to_avro(e)) for e in events]
    bad_json = IN.encode({**event_to_avro(events[0]), "event_id": "e11", "payload_json": '{"a": '})
    not_object = IN.encode({**event_to_avro(events[0]), "event_id": "e12", "payload_json": " [1, 2] "})
    message = messages[0]
    return messages + [bad_json, not_object, message[:-3], message + b"\x00", message[:2] + bytes(8) + message[10:],
                       b"", b"\xc3\x01"]


def _reference_record(offset, message):
    """decode_record through the codec alone (an AvroCodec has no fast reader)."""
    return decode_record(IN, offset, b"k", message)


@pytest.mark.parametrize("events", [lead_stream(300, seed=4), _odd_events(300)], ids=["synthetic", "odd"])
def test_decode_record_fast_path_equals_the_codec_path(events):
    decoder = EnvelopeDecoder(IN)
    assert decoder.fast
    messages = [IN.encode(event_to_avro(e)) for e in events] + _edge_messages()
    assert all(decoder.read(m) is not None for m in messages[:len(events)])   # the fast reader took them
    for i, m in enumerate(messages):
        fast, ref = decode_record(decoder, i, b"k", m), _reference_record(i, m)
        assert (fast.offset, fast.key, fast.value, fast.error) == (ref.offset, ref.key, ref.value, ref.error)
        assert fast.event == ref.event
        assert fast.envelope == ref.envelope
        assert fast.payload_json == ref.payload_json
        if ref.event is not None:
            assert type(fast.event.payload) is type(ref.event.payload)
            assert fast.event.occurred_at.tzinfo is not None and fast.event.occurred_at.utcoffset() == timedelta(0)


def test_plan_round_with_the_wire_paths_equals_the_codec_paths():
    class CodecEncoder:   # what the service did without wire.py
        @staticmethod
        def encode(t, envelope, _message):
            return OUT.encode(lifecycle_record(t, envelope))

    messages = [IN.encode(event_to_avro(e)) for e in lead_stream(400, seed=8)] + _edge_messages()
    plans = []
    for decoder, encoder in ((EnvelopeDecoder(IN), LifecycleEncoder(OUT, IN)), (IN, CodecEncoder())):
        decoded = [decode_record(decoder, i, b"k", m) for i, m in enumerate(messages)]
        plans.append(plan_round("leadflow.events", [PartitionInput(0, 0, decoded)], {}, {"e5"}, encoder))
    fast, ref = plans
    assert fast.parts == ref.parts      # offsets and the published (key, record) pairs
    assert fast.event_rows == ref.event_rows
    assert fast.duplicate_rows == ref.duplicate_rows
    assert fast.unreadable_rows == ref.unreadable_rows
    assert fast.leads == ref.leads
    assert (fast.applied_by_type, fast.ignored_by_reason, fast.stage_changes, fast.rejection_reasons,
            fast.duplicates) == (ref.applied_by_type, ref.ignored_by_reason, ref.stage_changes,
                                 ref.rejection_reasons, ref.duplicates)


def test_fromtimestamp_route_is_exact_for_microsecond_times():
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    rng = random.Random(1)
    year_2242 = (datetime(2242, 1, 1, tzinfo=timezone.utc) - epoch) // timedelta(microseconds=1)
    assert year_2242 < FLOAT_EXACT_US
    samples = [rng.randrange(0, year_2242) for _ in range(20000)] + [0, 1, 999_999, year_2242 - 1]
    samples += [s - s % 1_000_000 + 999_999 for s in samples[:2000]]   # the last microsecond of a second
    for us in samples:
        assert datetime.fromtimestamp(us / 1e6, UTC) == epoch + timedelta(microseconds=us), us


def test_a_value_that_is_not_bytes_is_read_as_the_codec_reads_it():
    decoder = EnvelopeDecoder(IN)
    message = IN.encode(event_to_avro(lead_stream(1, seed=3)[0]))
    for value in (memoryview(message), bytearray(message)):
        fast, ref = decode_record(decoder, 0, None, value), _reference_record(0, value)
        assert (fast.event, fast.envelope, fast.error) == (ref.event, ref.envelope, ref.error)


def test_a_lifecycle_record_from_a_value_that_is_not_bytes_is_the_codecs():
    # Compiled (mypyc), the splice accepts bytes only; anything else is encoded by the codec,
    # to the same bytes.
    encoder = LifecycleEncoder(OUT, IN)
    event = lead_stream(1, seed=3)[0]
    message = IN.encode(event_to_avro(event))
    t = next(iter(run_log([event])))
    expected = OUT.encode(lifecycle_record(t, event_to_avro(event)))
    assert encoder.splice(t, message) == expected
    for value in (memoryview(message), bytearray(message), None):
        assert encoder.splice(t, value) is None
        assert encoder.encode(t, event_to_avro(event), value) == expected
