"""Avro primitives written by hand for the hot paths (services/lifecycle/wire.py and
services/sla_monitor/wire.py): fastavro's per-call set-up costs more than a 100-byte record.
Everything else about Avro goes through services/common/avro_codec.py."""
from __future__ import annotations

_OPT = ["null", "string"]
# The field layouts the hand-written readers and writers assume; each checks the schema it is
# given against them at start-up and leaves the work to the codec when they differ. "event" is
# an embedded event_envelope.
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


def encode_long(n: int) -> bytes:
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


def read_long(m: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag varint (Avro long) at `pos`, and the position after it."""
    b = m[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 63:   # a long takes at most 10 bytes
            raise ValueError("varint too long")
        b = m[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


class InternedText(dict):
    """bytes -> the str they decode to, filled on first use (ids, types and sources repeat);
    emptied when it reaches `limit` entries, so a long-running service stays bounded."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __missing__(self, raw: bytes) -> str:
        if len(self) >= self.limit:
            self.clear()
        text = self[raw] = raw.decode("utf-8")
        return text
