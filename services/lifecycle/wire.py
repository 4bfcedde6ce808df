"""Fast paths for the two Avro messages on the lifecycle service's hot path, byte-identical to
services.common.avro_codec (tests/integration/lifecycle/test_lifecycle_wire.py checks that).

A lifecycle_record is the transition's fields around the applied event, and that event is an
event_envelope record: when the input message was written with the current event_envelope
schema, its Avro body is exactly the bytes the nested `event` field needs, so the record is
built by concatenation instead of re-encoding the event (a quarter of the service's CPU).

Both fast paths check at start-up that the schemas still have the layout they are written for,
and fall back to the codec otherwise (and for any message written with another schema version).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from services.common.avro_codec import HEADER_LEN, AvroCodec, load_schema_json, schema_fingerprint
from services.lifecycle.domain import Transition

log = logging.getLogger("leadflow.lifecycle")

_OPT = ["null", "string"]
# The lifecycle_record layout the fast encoder writes; "event" is checked against event_envelope.
LIFECYCLE_LAYOUT = (
    ("lead_id", "string"), ("event_id", "string"), ("version", "long"), ("from_stage", _OPT),
    ("to_stage", "string"), ("ignored", _OPT), ("event", "event_envelope"), ("channel", _OPT),
    ("segment", _OPT), ("fit", _OPT), ("owner", _OPT), ("team", _OPT),
)
ENVELOPE_LAYOUT = (
    ("event_id", "string"), ("lead_id", "string"), ("type", "string"),
    ("occurred_at", {"type": "long", "logicalType": "timestamp-micros"}), ("source", "string"),
    ("payload_json", "string"),
)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _long(n: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _layout_matches(fields: list, layout: tuple) -> bool:
    if len(fields) != len(layout):
        return False
    for field, (name, kind) in zip(fields, layout):
        if field.get("name") != name:
            return False
        if kind == "event_envelope":
            if schema_fingerprint(field["type"]) != schema_fingerprint(load_schema_json("event_envelope")):
                return False
        elif field.get("type") != kind:
            return False
    return True


class LifecycleEncoder:
    """Encodes the lifecycle record of a transition, splicing the input message's event body."""

    _CACHE_MAX = 100_000

    def __init__(self, out_codec: AvroCodec, in_codec: AvroCodec) -> None:
        self.codec = out_codec
        self.header = out_codec.header
        self.event_fingerprint = in_codec.fingerprint
        self._strings: dict[str, bytes] = {}
        self.fast = _layout_matches(load_schema_json("lifecycle_record")["fields"], LIFECYCLE_LAYOUT) and \
            _layout_matches(load_schema_json("event_envelope")["fields"], ENVELOPE_LAYOUT)
        if not self.fast:
            log.warning("lifecycle_record schema changed: the fast encoder is off (the codec encodes)")

    def _s(self, value: str) -> bytes:
        """A string field, memoised (stages, channels, owners and lead ids repeat a lot)."""
        enc = self._strings.get(value)
        if enc is None:
            raw = value.encode("utf-8")
            enc = _long(len(raw)) + raw
            if len(self._strings) >= self._CACHE_MAX:
                self._strings.clear()
            self._strings[value] = enc
        return enc

    def _opt(self, value: str | None) -> bytes:
        return b"\x00" if value is None else b"\x02" + self._s(value)

    def encode(self, t: Transition, envelope: Mapping[str, Any], message: bytes | None) -> bytes:
        """The lifecycle record of `t`; `message` is the input message the event came in (its
        body is reused when written with the current event_envelope schema)."""
        if not self.fast or message is None or message[2:HEADER_LEN] != self.event_fingerprint:
            from services.lifecycle.batch import lifecycle_record
            return self.codec.encode(lifecycle_record(t, envelope))
        s, opt = self._s, self._opt
        raw_id = t.event_id.encode("utf-8")
        return b"".join((
            self.header, s(t.lead_id), _long(len(raw_id)), raw_id, _long(t.version), opt(t.from_stage),
            s(t.to_stage), opt(t.ignored), memoryview(message)[HEADER_LEN:], opt(t.channel), opt(t.segment),
            opt(t.fit), opt(t.owner), opt(t.team),
        ))


class EnvelopeDecoder:
    """Decodes event_envelope messages of the current schema without fastavro's per-call set-up;
    any other message (older schema, corrupt) goes to the codec, which decodes or explains."""

    def __init__(self, codec: AvroCodec) -> None:
        self.codec = codec
        self.fingerprint = codec.fingerprint
        self.fast = _layout_matches(load_schema_json("event_envelope")["fields"], ENVELOPE_LAYOUT)

    def decode(self, message: bytes) -> dict[str, Any]:
        if self.fast and message[2:HEADER_LEN] == self.fingerprint and message[:2] == b"\xc3\x01":
            try:
                return self._decode_body(message)
            except (IndexError, ValueError, UnicodeDecodeError, OverflowError):
                pass   # let the codec say what is wrong with it
        return self.codec.decode(message)

    @staticmethod
    def _decode_body(m: bytes) -> dict[str, Any]:
        pos = HEADER_LEN
        values: list[Any] = []
        for i in range(6):
            # zig-zag varint
            b = m[pos]
            pos += 1
            n = b & 0x7F
            shift = 7
            while b & 0x80:
                b = m[pos]
                pos += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if shift > 63:
                    raise ValueError("varint too long")
            n = (n >> 1) ^ -(n & 1)
            if i == 3:
                values.append(EPOCH + timedelta(microseconds=n))
                continue
            if n < 0 or pos + n > len(m):
                raise ValueError("bad string length")
            values.append(m[pos:pos + n].decode("utf-8"))
            pos += n
        if pos != len(m):
            raise ValueError("bytes left after the record")
        return {
            "event_id": values[0], "lead_id": values[1], "type": values[2], "occurred_at": values[3],
            "source": values[4], "payload_json": values[5],
        }
