"""Avro single-object encoding: header bytes, round trips of all three schemas, old writer
versions, clear errors, and the Event <-> event_envelope converters."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from services.common.avro_codec import (
    HEADER_LEN,
    SCHEMA_DIR,
    SCHEMA_NAMES,
    SINGLE_OBJECT_MARKER,
    AvroCodec,
    AvroCodecError,
    UnknownSchemaFingerprint,
    event_from_avro,
    event_to_avro,
    find_schema_dir,
    load_codecs,
    load_schema_json,
    schema_fingerprint,
)
from services.common.envelope import Event, parse_event

from .avro_resolution import sample_records

T0 = datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=timezone.utc)


def crc64_avro(data: bytes) -> int:
    """The Avro spec's reference CRC-64-AVRO (Rabin) fingerprint, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.fixture(scope="module")
def codecs() -> dict[str, AvroCodec]:
    return load_codecs()


def an_event(**payload) -> Event:
    return parse_event({
        "event_id": "e1", "lead_id": "L1", "type": "lead.scored", "occurred_at": "2026-11-02T09:00:00.123456+01:00",
        "source": "hubspot", "payload": {"score": 87, "fit": "good", **payload},
    })


def test_fingerprint_matches_the_spec_test_vectors():
    # Signed 64-bit values from the Avro specification's schema fingerprint test data.
    for schema, expected in (('"null"', 7195948357588979594), ('"int"', 8247732601305521295),
                             ('"boolean"', -6970731678124411036)):
        assert int.from_bytes(schema_fingerprint(json.loads(schema)), "little", signed=True) == expected


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_header_is_marker_then_little_endian_crc64_of_the_canonical_form(codecs, name):
    canonical = to_parsing_canonical_form(parse_schema(load_schema_json(name), _write_hint=False))
    expected = crc64_avro(canonical.encode()).to_bytes(8, "little")
    codec = codecs[name]
    assert codec.header == SINGLE_OBJECT_MARKER + expected == b"\xc3\x01" + expected
    message = codec.encode(sample_records(load_schema_json(name))[0])
    assert message[:HEADER_LEN] == codec.header


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_round_trips_its_sample_records(codecs, name):
    codec = codecs[name]
    for record in sample_records(load_schema_json(name)):
        assert codec.decode(codec.encode(record)) == record


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_batch_variants_equal_one_by_one(codecs, name):
    codec = codecs[name]
    records = sample_records(load_schema_json(name)) * 3
    messages = codec.encode_many(records)
    assert messages == [codec.encode(r) for r in records]
    assert codec.decode_many(messages) == records


def test_messages_stay_intact_when_the_buffer_is_reused(codecs):
    codec = codecs["event_envelope"]
    long_one = codec.encode(event_to_avro(an_event(note="x" * 500)))
    short_one = codec.encode(event_to_avro(an_event()))
    assert len(long_one) > len(short_one)
    assert event_from_avro(codec.decode(long_one)) == an_event(note="x" * 500)
    assert event_from_avro(codec.decode(short_one)) == an_event()


def test_lifecycle_record_carries_the_whole_event(codecs):
    event = an_event(campaign={"id": 7, "tags": ["a", None]})
    record = {
        "lead_id": "L1", "event_id": "e1", "version": 3, "from_stage": "iql", "to_stage": "mql", "ignored": None,
        "event": event_to_avro(event), "channel": "website", "segment": "smb", "fit": "good",
        "owner": None, "team": None,
    }
    decoded = codecs["lifecycle_record"].decode(codecs["lifecycle_record"].encode(record))
    assert decoded == record
    assert event_from_avro(decoded["event"]) == event


def test_sla_outcome_round_trips_with_enums_map_and_nulls(codecs):
    record = {
        "kind": "window_closed", "sla": "rep_monthly_volume", "lead_id": None, "scope": {"owner": "ana"},
        "clock_id": "rep_monthly_volume:ana:2026-11", "outcome": "breached", "started_at": T0, "due_at": None,
        "stopped_at": None, "window_start": T0, "window_end": T0, "count": 149, "target": 150, "fit_share": None,
        "attempts": None, "required": None, "corrected": False, "policy_version": "default-1", "team": None,
        "emitted_at": T0, "late": True,
    }
    assert codecs["sla_outcome"].decode(codecs["sla_outcome"].encode(record)) == record


def test_a_duplicate_transition_cannot_be_published(codecs):
    record = {"lead_id": "L1", "event_id": "e1", "version": None, "from_stage": "new", "to_stage": "new",
              "ignored": "duplicate", "event": event_to_avro(an_event())}
    with pytest.raises(AvroCodecError, match="lifecycle_record: cannot encode"):
        codecs["lifecycle_record"].encode(record)


@pytest.mark.parametrize(
    "record",
    [
        {"event_id": "e1"},  # fields missing
        {"event_id": 5, "lead_id": "L1", "type": "t", "occurred_at": T0, "source": "s", "payload_json": "{}"},
        {"event_id": "e", "lead_id": "L1", "type": "t", "occurred_at": "noon", "source": "s", "payload_json": "{}"},
    ],
)
def test_encoding_a_record_that_does_not_fit_raises_a_codec_error(codecs, record):
    with pytest.raises(AvroCodecError, match="event_envelope: cannot encode"):
        codecs["event_envelope"].encode(record)


def test_an_unknown_enum_symbol_cannot_be_encoded(codecs):
    record = sample_records(load_schema_json("sla_outcome"))[0] | {"kind": "exploded"}
    with pytest.raises(AvroCodecError):
        codecs["sla_outcome"].encode(record)


def test_decode_refuses_bytes_without_the_marker(codecs):
    codec = codecs["event_envelope"]
    good = codec.encode(event_to_avro(an_event()))
    for bad in (b"", b"\xc3", b"\x00\x01" + good[2:], b'{"event_id": "e1"}', good[:HEADER_LEN - 1]):
        with pytest.raises(AvroCodecError, match="not an Avro single-object message"):
            codec.decode(bad)


def test_decode_names_an_unknown_fingerprint(codecs):
    envelope, lifecycle = codecs["event_envelope"], codecs["lifecycle_record"]
    message = envelope.encode(event_to_avro(an_event()))
    with pytest.raises(UnknownSchemaFingerprint) as caught:
        lifecycle.decode(message)
    assert caught.value.fingerprint == envelope.fingerprint
    assert envelope.fingerprint.hex() in str(caught.value)
    assert "lifecycle_record" in str(caught.value)


def test_decode_refuses_a_truncated_or_padded_body(codecs):
    codec = codecs["event_envelope"]
    message = codec.encode(event_to_avro(an_event()))
    with pytest.raises(AvroCodecError, match="corrupt message body"):
        codec.decode(message[:-5])
    with pytest.raises(AvroCodecError, match="1 bytes left"):
        codec.decode(message + b"\x00")


def test_decode_accepts_bytearray_and_memoryview(codecs):
    codec = codecs["event_envelope"]
    message = codec.encode(event_to_avro(an_event()))
    assert codec.decode(bytearray(message)) == codec.decode(memoryview(message)) == codec.decode(message)


def test_messages_of_an_older_release_are_read_with_the_current_schema(tmp_path: Path):
    # A made-up v2 that adds a field with a default: v1 messages must still decode under v2.
    v1 = load_schema_json("event_envelope")
    v2 = {**v1, "fields": [*v1["fields"], {"name": "tenant", "type": ["null", "string"], "default": None, "doc": "t"}]}
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    for folder, current, history in ((old_dir, v1, {1: v1}), (new_dir, v2, {1: v1, 2: v2})):
        (folder / "history" / "event_envelope").mkdir(parents=True)
        (folder / "event_envelope.avsc").write_text(json.dumps(current))
        for version, schema in history.items():
            (folder / "history" / "event_envelope" / f"v{version}.avsc").write_text(json.dumps(schema))
    old_codec, new_codec = AvroCodec("event_envelope", old_dir), AvroCodec("event_envelope", new_dir)
    assert old_codec.fingerprint != new_codec.fingerprint
    record = event_to_avro(an_event())
    assert new_codec.decode(old_codec.encode(record)) == {**record, "tenant": None}
    with pytest.raises(UnknownSchemaFingerprint):
        old_codec.decode(new_codec.encode({**record, "tenant": "acme"}))


def test_codec_reads_schemas_from_the_repository_by_default():
    assert (SCHEMA_DIR / "event_envelope.avsc").is_file()
    assert set(load_codecs()) == set(SCHEMA_NAMES)
    assert AvroCodec("sla_outcome", SCHEMA_DIR).fingerprint == AvroCodec("sla_outcome").fingerprint


def test_a_schema_name_that_does_not_exist_fails_at_construction():
    with pytest.raises(FileNotFoundError):
        AvroCodec("no_such_schema")


def test_event_converters_keep_unknown_payload_fields_exactly():
    payload = {
        "score": 87, "fit": "good", "nested": {"a": [1, 2.5, None, True, {"b": "ü"}]}, "big": 10**30,
        "neg_zero": -0.0, "tiny": 5e-324, "text": "😀 \u2028 \"quoted\"", "empty": {},
    }
    event = an_event(**payload)
    record = event_to_avro(event)
    assert record["occurred_at"] == datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=timezone.utc)
    assert json.loads(record["payload_json"]) == event.payload
    back = event_from_avro(record)
    assert back == event
    assert list(back.payload) == list(event.payload)  # key order kept too
    assert str(back.payload["neg_zero"]) == "-0.0"


def test_event_with_a_non_json_payload_cannot_be_converted():
    event = Event("e1", "L1", "lead.scored", T0, "s", {"score": 1, "ratio": float("nan")})
    with pytest.raises(AvroCodecError, match="payload is not JSON"):
        event_to_avro(event)
    with pytest.raises(AvroCodecError, match="payload is not JSON"):
        event_to_avro(Event("e1", "L1", "lead.scored", T0, "s", {"score": 1, "when": T0}))


def test_event_from_avro_refuses_a_payload_that_is_not_json():
    record = event_to_avro(an_event()) | {"payload_json": "{not json"}
    with pytest.raises(AvroCodecError, match="payload_json is not JSON"):
        event_from_avro(record)


def test_event_from_avro_reads_payload_text_with_surrounding_whitespace():
    record = event_to_avro(an_event()) | {"payload_json": ' {"score": 1} '}
    assert event_from_avro(record).payload == {"score": 1}


def test_full_message_round_trip_of_an_event(codecs):
    event = an_event(extra={"k": [1, "two"]})
    codec = codecs["event_envelope"]
    assert event_from_avro(codec.decode(codec.encode(event_to_avro(event)))) == event


def test_a_payload_nested_too_deeply_to_encode_is_a_codec_error():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(AvroCodecError, match="payload is not JSON"):
        event_to_avro(Event("e1", "L1", "lead.scored", T0, "s", {"score": 1, "deep": deep}))
    record = event_to_avro(an_event()) | {"payload_json": "[" * 100_000 + "]" * 100_000}
    with pytest.raises(AvroCodecError, match="payload_json is not JSON"):
        event_from_avro(record)


def test_schema_dir_is_the_source_trees_else_the_working_directorys(tmp_path: Path):
    checkout = tmp_path / "checkout"
    (checkout / "schemas").mkdir(parents=True)
    (checkout / "services" / "common").mkdir(parents=True)
    module = checkout / "services" / "common" / "avro_codec.py"
    assert find_schema_dir(module, tmp_path / "elsewhere") == (checkout / "schemas").resolve()
    # An installed wheel: no schemas/ beside the package, so the image's ./schemas is used.
    wheel_module = tmp_path / "site-packages" / "services" / "common" / "avro_codec.py"
    assert find_schema_dir(wheel_module, tmp_path / "app") == tmp_path / "app" / "schemas"
