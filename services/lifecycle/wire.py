"""Fast paths for the two Avro messages on the lifecycle service's hot path, byte-identical to
services.common.avro_codec (tests/integration/lifecycle/test_lifecycle_wire.py checks that).

Decoding (`EnvelopeDecoder.read`, what `batch.decode_record`/`decode_partition` call per input record): an
event_envelope message of the current schema becomes its `Event` in one pass, no dict in between:
- strings of up to 63 bytes (every id, type, source in practice) read by their one-byte length,
  longer ones by the general varint loop; types, sources and lead ids interned through a bounded
  bytes -> str dict (they repeat);
- `occurred_at`'s zig-zag varint, 8 bytes for any time from 1974 to 2540, read as four 16-bit
  words through a 64k table, and turned into a datetime by `datetime.fromtimestamp(us / 1e6, UTC)`,
  exact for every microsecond time from 1970 until 2242 (the float error stays below half a
  microsecond, and fromtimestamp rounds half-even); other times by `EPOCH + timedelta`;
- the `Event` built as `fast_constructor` does, inlined (no frozen `__init__`); the payload JSON
  parsed at once with the codec's own reader (a bad payload must make the record unreadable right
  here, so it is not parsed lazily), except that a payload text seen before whose value is a flat
  dict of scalars is copied from a bounded cache (`_Payloads`: same text, same value); the envelope
  record is only built if something asks for it.
Anything else (another writer schema, a corrupt body, bad JSON, a NUL) returns None and the caller
takes the codec's path, which decodes or explains exactly as before.

Encoding (`LifecycleEncoder.splice`): a lifecycle_record is the transition's fields around the
applied event, and that event is an event_envelope record: when the input message was written
with the current event_envelope schema, its Avro body is exactly the bytes the nested `event` field
needs, and its `lead_id`/`event_id` fields are exactly the record's first two fields. So the record
is one `b"".join` of the input's bytes and cached encodings (versions through a table; the
(from, to, ignored) and (channel, segment, fit, owner, team) tuples through one bounded dict each,
since their combinations repeat), no per-field call.

Both fast paths check at start-up that the schemas still have the layout they are written for
and run a probe both ways; if anything differs they are off and the codec does the work.
"""
from __future__ import annotations

import logging
import struct
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ClassVar, Mapping

from services.common.avro_codec import (
    HEADER_LEN, AvroCodec, AvroCodecError, decode_payload_json, event_from_avro, event_to_avro,
    load_schema_json, schema_fingerprint,
)
from services.common.avro_wire import ENVELOPE_LAYOUT, LIFECYCLE_LAYOUT, InternedText, encode_long, read_long
from services.common.envelope import Event
from services.lifecycle.domain import Transition
from services.lifecycle.domain.frozen_build import draft_class, fast_constructor

log = logging.getLogger("leadflow.lifecycle")

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Microsecond times in [0, this) are exact through a float (see the module doc): until 2242.
FLOAT_EXACT_US = 1 << 53
_new_event = fast_constructor(Event)
_EventDraft = draft_class(Event)
# Two varint bytes as one little-endian 16-bit word -> their 14 payload bits.
_WORDS = struct.Struct("<4H")
_SEVEN_BITS_PAIRS: tuple[int, ...] = tuple((w & 0x7F) | ((w >> 8) & 0x7F) << 7 for w in range(1 << 16))
# What the fast reader may raise on a message it cannot read (or a value that is not bytes); the
# codec then decodes or explains.
_UNREADABLE = (IndexError, ValueError, UnicodeDecodeError, OverflowError, struct.error, RecursionError,
               TypeError, AttributeError)


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


_SCALARS = frozenset({str, int, float, bool, type(None)})


class _Payloads(dict):
    """payload_json bytes -> (text, parsed dict), for payloads that repeat (a fit, a reason, a
    channel...): parsing the same text always gives the same value, and a dict of scalars copied
    is as good as a new parse. Only flat dicts of small texts are kept; emptied when full."""

    __slots__ = ()
    LIMIT: ClassVar[int] = 256          # bytes of payload JSON worth keeping
    ENTRIES: ClassVar[int] = 20_000     # a few MB at most

    def keep(self, raw: bytes, text: str, payload: Any) -> None:
        if type(payload) is not dict:
            return
        for value in payload.values():
            if type(value) not in _SCALARS:
                return
        if len(self) >= self.ENTRIES:
            self.clear()
        self[raw] = (text, payload.copy())   # the caller's dict goes to its Event


class _Encoded(dict):
    """str -> its Avro string encoding (length and UTF-8), bounded."""

    __slots__ = ()

    def __missing__(self, value: str) -> bytes:
        if len(self) >= 100_000:
            self.clear()
        raw = value.encode("utf-8")
        enc = self[value] = encode_long(len(raw)) + raw
        return enc


class _OptEncoded(dict):
    """str | None -> its encoding as the Avro union ["null", "string"], bounded."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__({None: b"\x00"})

    def __missing__(self, value: str) -> bytes:
        if len(self) >= 100_000:
            self.clear()
            self[None] = b"\x00"
        raw = value.encode("utf-8")
        enc = self[value] = b"\x02" + encode_long(len(raw)) + raw
        return enc


class _Joined(dict):
    """A tuple of field values -> their encodings joined (by `encode`), bounded."""

    __slots__ = ("encode",)

    def __init__(self, encode: Callable[[tuple], bytes]) -> None:
        super().__init__()
        self.encode = encode

    def __missing__(self, key: tuple) -> bytes:
        if len(self) >= 100_000:
            self.clear()
        enc = self[key] = self.encode(key)
        return enc


class _Versions(dict):
    """int -> its Avro long encoding, bounded."""

    __slots__ = ()

    def __missing__(self, n: int) -> bytes:
        if len(self) >= 100_000:
            self.clear()
        enc = self[n] = encode_long(n)
        return enc


def _decode_body(m: bytes) -> tuple[str, str, str, datetime, str, str]:
    """The general reader of an event_envelope body (any string length, any time): a varint loop
    per field. Raises on anything that is not exactly one record of the current layout."""
    pos = HEADER_LEN
    values: list[Any] = []
    for i in range(6):
        n, pos = read_long(m, pos)
        if i == 3:
            values.append(EPOCH + timedelta(microseconds=n))
            continue
        if n < 0 or pos + n > len(m):
            raise ValueError("bad string length")
        values.append(m[pos:pos + n].decode("utf-8"))
        pos += n
    if pos != len(m):
        raise ValueError("bytes left after the record")
    return tuple(values)  # type: ignore[return-value]


def _make_reader(header: bytes, intern_limit: int) -> Callable[[bytes], tuple[Event, str] | None]:
    """read(message) -> (Event, payload_json) for a message of the current event_envelope schema
    with no NUL in its strings, else None. Every look-up is a local of this closure."""
    interned = InternedText(intern_limit)
    payloads = _Payloads()
    payload_limit = _Payloads.LIMIT
    event_draft = _EventDraft
    event_cls = Event
    fromtimestamp = datetime.fromtimestamp
    unpack_words = _WORDS.unpack_from
    seven = _SEVEN_BITS_PAIRS
    new_event = _new_event
    parse = decode_payload_json
    exact = FLOAT_EXACT_US
    general = _decode_body
    unreadable = _UNREADABLE
    utc = UTC
    epoch = EPOCH

    def read(m: bytes) -> tuple[Event, str] | None:
        # event_envelope: event_id, lead_id, type, occurred_at, source, payload_json. A NUL byte
        # after the header is rare (a NUL in a string, an empty string, the time 0): the codec's path.
        try:
            if m[:HEADER_LEN] != header or m.find(b"\x00", HEADER_LEN) >= 0:
                return None
            n0 = m[10]
            p1 = 11 + (n0 >> 1)
            n1 = m[p1]
            p2 = p1 + 1 + (n1 >> 1)
            n2 = m[p2]
            p3 = p2 + 1 + (n2 >> 1)
            if (n0 | n1 | n2) & 0x81:   # a string over 63 bytes or a negative length
                event_id, lead_id, etype, occurred_at, source, text = general(m)
                return new_event(event_id, lead_id, etype, occurred_at, source, parse(text)), text
            w0, w1, w2, w3 = unpack_words(m, p3)
            if w0 & w1 & w2 & 0x8080 == 0x8080 and w3 & 0x8080 == 0x80:
                us = seven[w0] | seven[w1] << 14 | seven[w2] << 28 | seven[w3] << 42
                q = p3 + 8
            else:
                b = m[p3]
                us = b & 0x7F
                q = p3 + 1
                shift = 7
                while b & 0x80:
                    b = m[q]
                    q += 1
                    us |= (b & 0x7F) << shift
                    shift += 7
                    if shift > 63:
                        raise ValueError("varint too long")
            us = (us >> 1) ^ -(us & 1)
            n4 = m[q]
            p5 = q + 1 + (n4 >> 1)
            if n4 & 0x81:   # a source over 63 bytes
                event_id, lead_id, etype, occurred_at, source, text = general(m)
                return new_event(event_id, lead_id, etype, occurred_at, source, parse(text)), text
            b = m[p5]
            if b & 0x80:   # payload_json's length: 1 or 2 bytes in practice
                b2 = m[p5 + 1]
                plen = ((b & 0x7F) | (b2 << 7)) >> 1
                p6 = p5 + 2
                odd = b & 1 | b2 & 0x80   # negative, or a third length byte
            else:
                plen = b >> 1
                p6 = p5 + 1
                odd = b & 1
            if odd or p6 + plen != len(m):
                # a payload of 8 KiB or more, a negative length, bytes missing or left over
                event_id, lead_id, etype, occurred_at, source, text = general(m)
                return new_event(event_id, lead_id, etype, occurred_at, source, parse(text)), text
            raw = m[p6:]
            cached = payloads.get(raw)
            if cached is None:
                text = raw.decode()
                payload = parse(text)
                if plen <= payload_limit:
                    payloads.keep(raw, text, payload)
            else:
                text, payload = cached
                payload = payload.copy()   # every Event gets its own dict
            # new_event inlined (frozen_build.py)
            event = event_draft(m[11:p1].decode(), interned[m[p1 + 1:p2]], interned[m[p2 + 1:p3]],
                                fromtimestamp(us / 1e6, utc) if 0 <= us < exact else
                                epoch + timedelta(microseconds=us),
                                interned[m[q + 1:p5]], payload)
            event.__class__ = event_cls
            return event, text
        except unreadable:
            return None

    return read


class EnvelopeDecoder:
    """Decodes event_envelope messages of the current schema without fastavro's per-call set-up;
    any other message (older schema, corrupt) goes to the codec, which decodes or explains."""

    INTERN_LIMIT = 50_000   # bytes -> str entries kept (a few MB)

    def __init__(self, codec: AvroCodec) -> None:
        self.codec = codec
        self.fingerprint = codec.fingerprint
        self.header = codec.header
        self.read = _make_reader(codec.header, self.INTERN_LIMIT)
        self.fast = _layout_matches(load_schema_json("event_envelope")["fields"], ENVELOPE_LAYOUT) and \
            _decoder_probe_agrees(self)
        if not self.fast:
            log.warning("event_envelope schema changed: the fast decoder is off (the codec decodes)")
            self.read = lambda _m: None

    def read_event(self, message: bytes) -> tuple[Event, str] | None:
        """(the Event, its payload_json) when the fast path reads `message`, else None."""
        return self.read(message)

    def decode(self, message: Any) -> dict[str, Any]:
        """The envelope record, as the codec gives it (which also reads a memoryview or bytearray;
        the fast reader takes bytes only)."""
        got = self.read(message) if type(message) is bytes else None
        if got is None:
            return self.codec.decode(message)
        event, text = got
        return envelope_record(event, text)


def envelope_record(event: Event, payload_json: str) -> dict[str, Any]:
    """The event_envelope record of an event read from a message with this payload text."""
    return {
        "event_id": event.event_id, "lead_id": event.lead_id, "type": event.type,
        "occurred_at": event.occurred_at, "source": event.source, "payload_json": payload_json,
    }


class LifecycleEncoder:
    """Encodes the lifecycle record of a transition, splicing the input message's bytes."""

    def __init__(self, out_codec: AvroCodec, in_codec: AvroCodec) -> None:
        self.codec = out_codec
        self.header = out_codec.header
        self.event_fingerprint = in_codec.fingerprint
        self.event_header = in_codec.header
        self.splice = self._make_splice()
        self.fast = _layout_matches(load_schema_json("lifecycle_record")["fields"], LIFECYCLE_LAYOUT) and \
            _layout_matches(load_schema_json("event_envelope")["fields"], ENVELOPE_LAYOUT) and \
            _encoder_probe_agrees(self, in_codec)
        if not self.fast:
            log.warning("lifecycle_record schema changed: the fast encoder is off (the codec encodes)")
            self.splice = lambda _t, _m: None

    def _make_splice(self) -> Callable[[Transition, bytes | None], bytes | None]:
        header = self.header
        in_header = self.event_header
        s_enc = _Encoded()
        o_enc = _OptEncoded()
        versions = _Versions()
        # (from_stage, to_stage, ignored) and (channel, segment, fit, owner, team) -> their
        # encodings: one look-up each instead of one per field (the combinations repeat).
        moves = _Joined(lambda k: o_enc[k[0]] + s_enc[k[1]] + o_enc[k[2]])
        attributes = _Joined(lambda k: b"".join([o_enc[v] for v in k]))
        join = b"".join
        unreadable = (IndexError, ValueError)   # a message the splice cannot walk: the codec encodes

        def splice(t: Transition, message: Any) -> bytes | None:
            """The record of `t` from `message`, the input message of t's event (its lead_id and
            event_id fields are t's, its body is the event field); None unless `message` is bytes
            written with the current event_envelope schema."""
            if type(message) is not bytes:
                return None   # None, or a memoryview... (never from aiokafka): the codec encodes
            m: bytes = message   # compiled (mypyc), the reads below are then bytes operations
            if m[:HEADER_LEN] != in_header:
                return None
            try:
                n0 = m[10]
                if n0 & 0x81:
                    p1 = _skip_string(m, HEADER_LEN)
                    p2 = _skip_string(m, p1)
                else:
                    p1 = 11 + (n0 >> 1)
                    n1 = m[p1]
                    p2 = p1 + 1 + (n1 >> 1) if not n1 & 0x81 else _skip_string(m, p1)
                return join((
                    header, m[p1:p2], m[HEADER_LEN:p1], versions[t.version],
                    moves[t.from_stage, t.to_stage, t.ignored], m[HEADER_LEN:],
                    attributes[t.channel, t.segment, t.fit, t.owner, t.team],
                ))
            except unreadable:
                return None

        return splice

    def encode(self, t: Transition, envelope: Mapping[str, Any], message: Any) -> bytes:
        """The lifecycle record of `t`; `message` is the input message the event came in (its
        bytes are reused when written with the current event_envelope schema)."""
        out = self.splice(t, message)
        if out is None:
            from services.lifecycle.batch import lifecycle_record
            return self.codec.encode(lifecycle_record(t, envelope))
        return out


def _skip_string(m: bytes, pos: int) -> int:
    """The position after the Avro string at `pos`."""
    n, pos = read_long(m, pos)
    if n < 0 or pos + n > len(m):
        raise ValueError("bad string length")
    return pos + n


def _probe_events() -> list[Event]:
    """A small log touching every field kind: both union branches, short and long strings, a
    two-byte payload length, non-ASCII text, times before 1970 and after 2242."""
    t0 = datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=UTC)
    return [
        Event("p-1", "lead-ü", "lead.created", t0, "website", {"channel": "event", "segment": "smb", "note": "x" * 80}),
        Event("p-2", "lead-ü", "lead.scored", t0 + timedelta(seconds=1), "hubspot", {"score": 80, "fit": "good"}),
        Event("p-3", "lead-ü", "lead.assigned", t0 + timedelta(days=3), "crm", {"owner": "ana", "team": "emea"}),
        Event("p-4", "lead-ü", "lead.information_qualified", t0 + timedelta(days=4), "crm", {}),
        Event("p-5" + "5" * 70, "other" * 20, "lead.accepted", datetime(1969, 7, 20, tzinfo=UTC), "crm",
              {"owner": "bo"}),
        Event("p-6", "third", "deal.won", datetime(2300, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "crm", {"revenue": 1}),
    ]


def _decoder_probe_agrees(decoder: EnvelopeDecoder) -> bool:
    codec = decoder.codec
    try:
        for event in _probe_events():
            message = codec.encode(event_to_avro(event))
            got = decoder.read(message)
            envelope = codec.decode(message)
            if got is None or got[0] != event_from_avro(envelope) or envelope_record(*got) != envelope:
                return False
    except (AvroCodecError, *_UNREADABLE):
        return False
    return True


def _encoder_probe_agrees(encoder: LifecycleEncoder, in_codec: AvroCodec) -> bool:
    from services.lifecycle.batch import lifecycle_record
    from services.lifecycle.domain import run_log

    try:
        events = _probe_events()
        messages = {e.event_id: in_codec.encode(event_to_avro(e)) for e in events}
        for t in run_log(events):
            message = messages[t.event_id]
            envelope = in_codec.decode(message)
            if encoder.splice(t, message) != encoder.codec.encode(lifecycle_record(t, envelope)):
                return False
    except (AvroCodecError, *_UNREADABLE):
        return False
    return True
