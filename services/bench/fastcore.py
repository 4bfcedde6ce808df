"""A batch-at-a-time lifecycle core: leadflow.events messages in, leadflow.lifecycle records out,
through the unchanged domain (`apply_event`), byte-identical to the service's per-event path
(services/lifecycle/wire.py + services.common.avro_codec.event_from_avro).

This is the benchmark's prototype of the optimisations proposed in docs/performance.md; it lives
here (not in the service) so the gain of each change is measured before anyone adopts it:

1. one loop per batch, every look-up hoisted, no function call per field (the service decodes a
   field per loop turn and calls `_s`/`_opt` per encoded field);
2. strings of up to 63 bytes (every id, type, source and stage in practice) read with a one-byte
   length, no varint loop; repeated ones (lead ids, types, sources) interned through a dict;
3. the lifecycle record's `lead_id` and `event_id` fields copied as the input message's own Avro
   bytes, the optional fields through dicts that already hold their encoding (`None` included),
   so encoding is one `b"".join` of cached pieces;
4. `occurred_at` through `datetime.fromtimestamp(us / 1e6)`, exact for every microsecond time
   until the year 2242 (the float error stays below half a microsecond, and fromtimestamp rounds
   half-even), instead of `EPOCH + timedelta(microseconds=...)`;
5. the payload JSON parsed only when something reads it (`LazyPayload`, with the codec's own
   C-scanner reader): the state machine reads the payload of 5 of the 17 event types.

Anything the fast path does not handle (another schema version, a long string, a corrupt body)
goes through the Avro codec per event, so the result is always the same; and at construction a
probe log is run both ways: if the schemas changed so that the bytes differ, the fast path is off.
"""
from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from services.common.avro_codec import HEADER_LEN, AvroCodec, _decode_payload, event_from_avro, event_to_avro
from services.common.envelope import Event
from services.lifecycle.batch import lifecycle_record
from services.lifecycle.domain import LeadState, apply_event
from services.lifecycle.domain.frozen_build import fast_constructor

UTC = timezone.utc
# Microsecond times below this are exact through a float (see the module doc): year 2242.
_FLOAT_EXACT_US = 1 << 53
_new_event = fast_constructor(Event)
# Two varint bytes as one little-endian 16-bit word -> their 14 payload bits.
_WORDS = struct.Struct("<4H")
_SEVEN_BITS_PAIRS: tuple[int, ...] = tuple((w & 0x7F) | ((w >> 8) & 0x7F) << 7 for w in range(1 << 16))
# The payload JSON reader event_from_avro uses (C scanner, no per-call set-up): the same values.
_decode_json = _decode_payload


# Ablations: name -> what turning the optimisation off means.
ABLATIONS: dict[str, str] = {
    "eager_payload": "every payload JSON parsed at decode time (as event_from_avro does)",
    "timedelta_time": "occurred_at as EPOCH + timedelta(microseconds=...) (as wire.EnvelopeDecoder does)",
    "varint_loop": "occurred_at's varint read byte by byte in a loop (as wire.EnvelopeDecoder does)",
    "no_domain": "apply_event replaced by a constant: what decoding and encoding cost alone",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _via_timedelta(seconds: float, tz) -> datetime:
    return _EPOCH + timedelta(microseconds=round(seconds * 1e6))


def _no_words(_m: bytes, _p: int) -> tuple[int, int, int, int]:
    return (0, 0, 0, 0)


def _no_domain():
    fixed = apply_event(None, Event("x", "x", "lead.created", _EPOCH, "x", {}))
    return lambda _state, _event: fixed


class LazyPayload(Mapping):
    """An event payload kept as its JSON text until something reads it."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: dict | None = None

    def _load(self) -> dict:
        value = self._value
        if value is None:
            value = self._value = _decode_json(self._text)
        return value

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._load().get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def __repr__(self) -> str:
        return f"LazyPayload({self._text!r})"


class _Interned(dict):
    """bytes -> the str they decode to, filled on first use (ids and types repeat)."""

    __slots__ = ()

    def __missing__(self, raw: bytes) -> str:
        if len(self) >= 1_000_000:
            self.clear()
        text = self[raw] = raw.decode("utf-8")
        return text


class _Encoded(dict):
    """str -> its Avro string encoding (length and UTF-8), for strings that repeat."""

    __slots__ = ()

    def __missing__(self, value: str) -> bytes:
        if len(self) >= 100_000:
            self.clear()
        raw = value.encode("utf-8")
        enc = self[value] = _long(len(raw)) + raw
        return enc


class _OptEncoded(dict):
    """str | None -> its encoding as the Avro union ["null", "string"]."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__({None: b"\x00"})

    def __missing__(self, value: str) -> bytes:
        if len(self) >= 100_000:
            self.clear()
            self[None] = b"\x00"
        raw = value.encode("utf-8")
        enc = self[value] = b"\x02" + _long(len(raw)) + raw
        return enc


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _Versions(dict):
    """int -> its Avro long encoding."""

    __slots__ = ()

    def __missing__(self, n: int) -> bytes:
        enc = self[n] = _long(n)
        return enc


class BatchCore:
    """The lifecycle core over whole batches: `run(messages)` -> one lifecycle record per message
    that is not a duplicate, in order. Holds the lead states and seen event ids like `LeadLog`."""

    def __init__(self, in_codec: AvroCodec | None = None, out_codec: AvroCodec | None = None,
                 ablate: Iterable[str] = ()) -> None:
        """`ablate` turns single optimisations off to measure what each is worth (see ABLATIONS);
        "no_domain" skips the state machine and gives wrong records: for measuring only."""
        unknown = set(ablate) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablation(s) {sorted(unknown)}; known: {sorted(ABLATIONS)}")
        self.ablate = frozenset(ablate)
        self.in_codec = in_codec or AvroCodec("event_envelope")
        self.out_codec = out_codec or AvroCodec("lifecycle_record")
        self.states: dict[str, LeadState] = {}
        self.seen_event_ids: set[str] = set()
        self.fingerprint = self.in_codec.fingerprint
        self.out_header = self.out_codec.header
        self.slow_path = 0       # messages that went through the per-event path
        self.fast = _probe_agrees(self.in_codec, self.out_codec)

    def run(self, messages: Iterable[bytes]) -> list[bytes]:
        states = self.states
        get_state = states.get
        seen = self.seen_event_ids
        seen_add = seen.add
        interned: _Interned = _Interned()
        s_enc = _Encoded()
        o_enc = _OptEncoded()
        versions = _Versions()
        in_header = self.in_codec.header
        header = self.out_header
        fromtimestamp = datetime.fromtimestamp
        lazy = LazyPayload
        unpack_words = _WORDS.unpack_from
        seven = _SEVEN_BITS_PAIRS
        new_event = _new_event
        apply = apply_event
        if self.ablate:   # each swaps one local name: the loop itself is the same
            ablate = self.ablate
            if "eager_payload" in ablate:
                lazy = _decode_json
            if "timedelta_time" in ablate:
                fromtimestamp = _via_timedelta
            if "varint_loop" in ablate:
                unpack_words = _no_words
            if "no_domain" in ablate:
                apply = _no_domain()
        join = b"".join
        out: list[bytes] = []
        append = out.append
        fast = self.fast
        for m in messages:
            # event_envelope: event_id, lead_id, type, occurred_at, source, payload_json
            if not fast or m[:HEADER_LEN] != in_header:
                self._slow(m, append)
                continue
            try:
                n0 = m[10]
                p1 = 11 + (n0 >> 1)
                n1 = m[p1]
                p2 = p1 + 1 + (n1 >> 1)
                n2 = m[p2]
                p3 = p2 + 1 + (n2 >> 1)
                # occurred_at: a zig-zag varint, 8 bytes for any time from 1974 to 2540 (read as
                # four 16-bit words and a table), else 1-10 bytes in a loop
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
                us = (us >> 1) ^ -(us & 1)
                n4 = m[q]
                p5 = q + 1 + (n4 >> 1)
                # payload_json's length: 1 or 2 bytes in practice
                b = m[p5]
                if b & 0x80:
                    b2 = m[p5 + 1]
                    plen = ((b & 0x7F) | (b2 << 7)) >> 1
                    p6 = p5 + 2
                    odd = b & 1 | b2 & 0x80   # negative, or a third length byte
                else:
                    plen = b >> 1
                    p6 = p5 + 1
                    odd = b & 1
                # A long string (length over 63 bytes) or a negative length, a time the float
                # route cannot hold exactly, bytes missing or left over: the general decoder.
                if (n0 | n1 | n2 | n4) & 0x81 or odd or p6 + plen != len(m) or not 0 <= us < _FLOAT_EXACT_US:
                    self._slow(m, append)
                    continue
                event_id = m[11:p1].decode()
                lead_id = interned[m[p1 + 1:p2]]
                etype = interned[m[p2 + 1:p3]]
                text = m[p6:].decode()
                event = new_event(
                    event_id, lead_id, etype, fromtimestamp(us / 1e6, UTC), interned[m[q + 1:p5]],
                    lazy(text),
                )
            except (IndexError, UnicodeDecodeError, struct.error, ValueError, RecursionError):
                self._slow(m, append)
                continue
            if event_id in seen:
                continue  # a duplicate: stored apart, never published
            seen_add(event_id)
            state, t = apply(get_state(lead_id), event)
            states[lead_id] = state
            append(join((
                header, m[p1:p2], m[10:p1], versions[t.version], o_enc[t.from_stage], s_enc[t.to_stage],
                o_enc[t.ignored], m[HEADER_LEN:], o_enc[t.channel], o_enc[t.segment], o_enc[t.fit],
                o_enc[t.owner], o_enc[t.team],
            )))
        return out

    def _slow(self, message: bytes, append: Callable[[bytes], None]) -> None:
        """The codec's per-event path, for anything the fast path leaves alone."""
        self.slow_path += 1
        envelope = self.in_codec.decode(message)
        event = event_from_avro(envelope)
        if event.event_id in self.seen_event_ids:
            return
        self.seen_event_ids.add(event.event_id)
        state, t = apply_event(self.states.get(event.lead_id), event)
        self.states[event.lead_id] = state
        append(self.out_codec.encode(lifecycle_record(t, envelope)))


def _probe_agrees(in_codec: AvroCodec, out_codec: AvroCodec) -> bool:
    """Whether the fast path gives the codec's bytes for a small log touching every field kind
    (both union branches, a two-byte payload length, a non-ASCII text)."""
    t0 = datetime(2026, 11, 2, 8, 0, 0, 123456, tzinfo=UTC)
    probe = [
        Event("p-1", "lead-ü", "lead.created", t0, "website", {"channel": "event", "segment": "smb", "note": "x" * 80}),
        Event("p-2", "lead-ü", "lead.scored", t0 + timedelta(seconds=1), "hubspot", {"score": 80, "fit": "good"}),
        Event("p-3", "lead-ü", "lead.assigned", t0 + timedelta(days=3), "crm", {"owner": "ana", "team": "emea"}),
        Event("p-4", "lead-ü", "lead.information_qualified", t0 + timedelta(days=4), "crm", {}),
        Event("p-5", "other", "lead.accepted", t0, "crm", {"owner": "bo"}),
    ]
    messages = [in_codec.encode(event_to_avro(e)) for e in probe]
    core = BatchCore.__new__(BatchCore)
    core.in_codec, core.out_codec = in_codec, out_codec
    core.states, core.seen_event_ids = {}, set()
    core.fingerprint, core.out_header, core.slow_path, core.fast = in_codec.fingerprint, out_codec.header, 0, True
    core.ablate = frozenset()
    try:
        fast = core.run(messages)
    except Exception:  # noqa: BLE001 - a layout the fast path cannot read
        return False
    core.states, core.seen_event_ids, core.fast = {}, set(), False
    return core.slow_path == 0 and fast == core.run(messages)
