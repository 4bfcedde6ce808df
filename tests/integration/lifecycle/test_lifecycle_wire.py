"""The lifecycle service's fast Avro paths are byte-identical to the codec (no stack needed)."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest

from services.common.avro_codec import AvroCodec, AvroCodecError, event_to_avro
from services.common.envelope import Event
from services.lifecycle.batch import decode_record, jsonb_text, lifecycle_record
from services.lifecycle.domain import run_log
from services.lifecycle.synthetic import START, lead_stream
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder

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
