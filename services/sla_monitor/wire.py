"""The SLA monitor's two Avro fast paths. `LifecycleReader`: a fast reader of leadflow.lifecycle
records for the hot path: a message of the
current lifecycle_record schema becomes its `Transition` in one pass over the bytes, with no
fastavro call and no dict in between (fastavro's `schemaless_reader` set-up per call, the record
dict and `event_from_avro` cost about 3x this).

- strings are read by their varint length and decoded with `bytes.decode`; lead ids, stages,
  types, sources, channels, segments, owners and teams repeat, so they go through a bounded
  bytes -> str dict (`InternedText`);
- `occurred_at` (timestamp-micros) becomes `EPOCH + timedelta(microseconds=n)`, exactly what
  fastavro gives;
- the payload JSON is parsed at once with the codec's own reader (a record whose payload is not
  JSON must be unreadable right here, as on the codec's path);
- the `Event` and `Transition` are built by `fast_constructor` (no frozen `__init__`).

Anything this reader does not take (another writer schema, a corrupt body, bytes left over, bad
JSON, lead_id/event_id differing from the event's) returns None and the caller takes the codec's
path (`records.transition_from_avro`), which decodes or explains exactly as before. At start-up the
reader checks that the schema still has the layout it is written for, else it is off.
tests/unit/sla/test_wire.py compares it with the codec path.

`ClockOutcomeEncoder`: the leadflow.sla record of a clock emission written field by field (about
6.5 µs against 14 µs for the record dict and fastavro); tests/unit/sla/test_outcome_wire.py
compares its bytes with the codec's for every clock emission of bench traffic and odd values.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from services.common.avro_codec import HEADER_LEN, AvroCodec, decode_payload_json, load_schema_json
from services.common.avro_wire import ENVELOPE_LAYOUT, LIFECYCLE_LAYOUT, InternedText, encode_long, read_long
from services.common.envelope import Event
from services.lifecycle.domain import UNKNOWN_FIT, Transition
from services.lifecycle.domain.frozen_build import fast_constructor

log = logging.getLogger("leadflow.sla_monitor")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_new_event = fast_constructor(Event)
_new_transition = fast_constructor(Transition)
# What reading a message this reader cannot take may raise; the codec then decodes or explains.
_UNREADABLE = (IndexError, ValueError, UnicodeDecodeError, OverflowError, RecursionError, TypeError,
               AttributeError)


def layout_matches(schema: dict) -> bool:
    """True if `schema` (lifecycle_record JSON) has exactly the layout this reader is written for."""
    fields = schema.get("fields", [])
    if len(fields) != len(LIFECYCLE_LAYOUT):
        return False
    for field, (name, kind) in zip(fields, LIFECYCLE_LAYOUT):
        if field.get("name") != name:
            return False
        if kind == "event_envelope":
            inner = field.get("type")
            if not isinstance(inner, dict) or inner.get("type") != "record":
                return False
            inner_fields = inner.get("fields", [])
            if [(f.get("name"), f.get("type")) for f in inner_fields] != list(ENVELOPE_LAYOUT):
                return False
        elif field.get("type") != kind:
            return False
    return True


def make_reader(header: bytes, intern_limit: int = 50_000) -> Callable[[bytes], Transition | None]:
    """read(message) -> the Transition of a lifecycle_record message of the current schema, or None
    when this reader does not take it (the caller decodes with the codec). Locals only.

    A varint below 0x80 (every string under 64 bytes, every union index) is read inline; longer
    ones through `read_long`. A negative string length or one past the end raises ValueError."""
    interned = InternedText(intern_limit)
    new_event = _new_event
    new_transition = _new_transition
    parse = decode_payload_json
    epoch = EPOCH
    td = timedelta
    unreadable = _UNREADABLE
    unknown_fit = UNKNOWN_FIT
    hl = HEADER_LEN
    long_at = read_long

    def string_at(m: bytes, pos: int, end: int) -> tuple[bytes, int]:
        b = m[pos]
        if b < 0x80:
            if b & 1:
                raise ValueError("negative length")
            q = pos + 1 + (b >> 1)
            if q > end:
                raise ValueError("string past the end")
            return m[pos + 1:q], q
        n, pos = long_at(m, pos)
        if n < 0 or pos + n > end:
            raise ValueError("bad string length")
        return m[pos:pos + n], pos + n

    def optional_at(m: bytes, pos: int, end: int) -> tuple[str | None, int]:
        b = m[pos]
        if b == 0:
            return None, pos + 1
        if b != 2:
            raise ValueError("bad union index")
        raw, pos = string_at(m, pos + 1, end)
        return interned[raw], pos

    def read_general(m: bytes) -> Transition | None:
        try:
            if m[:hl] != header:
                return None
            end = len(m)
            raw, pos = string_at(m, hl, end)
            lead_id = interned[raw]
            event_id_raw, pos = string_at(m, pos, end)
            event_id = event_id_raw.decode()
            b = m[pos]
            if b < 0x80:
                version = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                version, pos = long_at(m, pos)
            from_stage, pos = optional_at(m, pos, end)
            raw, pos = string_at(m, pos, end)
            to_stage = interned[raw]
            ignored, pos = optional_at(m, pos, end)
            raw, pos = string_at(m, pos, end)
            e_event_id = event_id if raw == event_id_raw else raw.decode()
            raw, pos = string_at(m, pos, end)
            e_lead_id = interned[raw]
            raw, pos = string_at(m, pos, end)
            etype = interned[raw]
            us, pos = long_at(m, pos)
            raw, pos = string_at(m, pos, end)
            source = interned[raw]
            raw, pos = string_at(m, pos, end)
            payload = parse(raw.decode())
            channel, pos = optional_at(m, pos, end)
            segment, pos = optional_at(m, pos, end)
            fit, pos = optional_at(m, pos, end)
            owner, pos = optional_at(m, pos, end)
            team, pos = optional_at(m, pos, end)
            if pos != end or e_lead_id != lead_id or e_event_id != event_id:
                return None  # bytes left over, or ids that differ: the codec's path explains
            event = new_event(e_event_id, e_lead_id, etype, epoch + td(microseconds=us), source, payload)
            return new_transition(lead_id, event_id, version, from_stage, to_stage, ignored, event, channel,
                                  segment, fit or unknown_fit, owner, team)
        except unreadable:
            return None

    def read(m: bytes) -> Transition | None:
        # The common case inline: every string shorter than 64 bytes, so each length is one byte
        # (b & 0x81 == 0: short and not negative) and each optional is 0 or 2 then that byte.
        # Anything else goes to read_general. A slice past the end is caught by pos != end.
        try:
            if m[:hl] != header:
                return None
            b = m[10]
            if b & 0x81:
                return read_general(m)
            p = 11 + (b >> 1)
            lead_raw = m[11:p]
            b = m[p]
            if b & 0x81:
                return read_general(m)
            q = p + 1 + (b >> 1)
            id_raw = m[p + 1:q]
            b = m[q]
            if b < 0x80:
                version = (b >> 1) ^ -(b & 1)
                p = q + 1
            else:
                version, p = long_at(m, q)
            b = m[p]
            if b == 0:
                from_stage = None
                p += 1
            else:
                n = m[p + 1]
                if b != 2 or n & 0x81:
                    return read_general(m)
                q = p + 2 + (n >> 1)
                from_stage = interned[m[p + 2:q]]
                p = q
            b = m[p]
            if b & 0x81:
                return read_general(m)
            q = p + 1 + (b >> 1)
            to_stage = interned[m[p + 1:q]]
            b = m[q]
            if b == 0:
                ignored = None
                p = q + 1
            else:
                n = m[q + 1]
                if b != 2 or n & 0x81:
                    return read_general(m)
                p = q + 2 + (n >> 1)
                ignored = interned[m[q + 2:p]]
            # the event: event_id, lead_id (equal to the record's), type, occurred_at, source, payload
            b = m[p]
            if b & 0x81:
                return read_general(m)
            q = p + 1 + (b >> 1)
            if m[p + 1:q] != id_raw:
                return None  # the codec's path explains
            b = m[q]
            if b & 0x81:
                return read_general(m)
            p = q + 1 + (b >> 1)
            if m[q + 1:p] != lead_raw:
                return None
            b = m[p]
            if b & 0x81:
                return read_general(m)
            q = p + 1 + (b >> 1)
            etype = interned[m[p + 1:q]]
            b = m[q]
            q += 1
            us = b & 0x7F
            shift = 7
            while b & 0x80:
                b = m[q]
                q += 1
                us |= (b & 0x7F) << shift
                shift += 7
                if shift > 63:
                    return None
            us = (us >> 1) ^ -(us & 1)
            b = m[q]
            if b & 0x81:
                return read_general(m)
            p = q + 1 + (b >> 1)
            source = interned[m[q + 1:p]]
            b = m[p]
            if b & 0x81:   # payload JSON of 64 bytes or more: a 2-byte length, in practice
                plen, q = long_at(m, p)
                if plen < 0:
                    return None
            else:
                plen = b >> 1
                q = p + 1
            p = q + plen
            text = m[q:p].decode()
            opts = []
            for _ in range(5):   # channel, segment, fit, owner, team
                b = m[p]
                if b == 0:
                    opts.append(None)
                    p += 1
                    continue
                n = m[p + 1]
                if b != 2 or n & 0x81:
                    return read_general(m)
                q = p + 2 + (n >> 1)
                opts.append(interned[m[p + 2:q]])
                p = q
            if p != len(m):
                return None
            lead_id = interned[lead_raw]
            event_id = id_raw.decode()
            event = new_event(event_id, lead_id, etype, epoch + td(microseconds=us), source, parse(text))
            channel, segment, fit, owner, team = opts
            return new_transition(lead_id, event_id, version, from_stage, to_stage, ignored, event, channel,
                                  segment, fit or unknown_fit, owner, team)
        except unreadable:
            return None

    return read


class LifecycleReader:
    """`read(message)`: the fast path when the schema has the expected layout, else always None."""

    def __init__(self, codec: AvroCodec) -> None:
        self.fast = layout_matches(load_schema_json("lifecycle_record"))
        if self.fast:
            self.read = make_reader(codec.header)
        else:
            log.warning("lifecycle_record schema changed: the fast reader is off (the codec decodes)")
            self.read = lambda _m: None


# --- leadflow.sla records of clock emissions ----------------------------------------------------------

OUTCOME_LAYOUT = (
    "kind", "sla", "lead_id", "scope", "clock_id", "outcome", "started_at", "due_at", "stopped_at",
    "window_start", "window_end", "count", "target", "fit_share", "attempts", "required", "corrected",
    "policy_version", "team", "emitted_at", "late",
)
_TS = {"type": "long", "logicalType": "timestamp-micros"}
OUTCOME_TYPES = {
    "sla": "string", "lead_id": ["null", "string"], "scope": {"type": "map", "values": "string"},
    "clock_id": "string", "started_at": _TS, "due_at": ["null", _TS], "stopped_at": ["null", _TS],
    "window_start": ["null", _TS], "window_end": ["null", _TS], "count": ["null", "long"],
    "target": ["null", "long"], "fit_share": ["null", "double"], "attempts": ["null", "int"],
    "required": ["null", "int"], "corrected": "boolean", "policy_version": "string",
    "team": ["null", "string"], "emitted_at": _TS, "late": "boolean",
}
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


def _micros(value: datetime) -> int:
    """fastavro's timestamp-micros of an aware datetime (exact integer arithmetic)."""
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def outcome_layout_matches(schema: dict) -> bool:
    fields = schema.get("fields", [])
    if tuple(f.get("name") for f in fields) != OUTCOME_LAYOUT:
        return False
    for field in fields:
        name, kind = field["name"], field["type"]
        if name in ("kind", "outcome"):
            if not isinstance(kind, dict) or kind.get("type") != "enum":
                return False
        elif kind != OUTCOME_TYPES[name]:
            return False
    return True


class ClockOutcomeEncoder:
    """The leadflow.sla record of a clock's emission, written field by field (no record dict, no
    fastavro schema walk), byte for byte what `AvroCodec("sla_outcome").encode(outcome_record(...))`
    writes; `encode` returns None for anything it does not take (a naive datetime, a kind not in
    the enum, an int out of range, text that is not UTF-8-encodable), and the caller takes the
    codec's path. Windows always go through the codec (few of them). Off when the schema's layout
    is not the one it is written for."""

    def __init__(self, codec: AvroCodec) -> None:
        schema = load_schema_json("sla_outcome")
        self.header = codec.header
        self.fast = outcome_layout_matches(schema)
        if self.fast:
            fields = {f["name"]: f["type"] for f in schema["fields"]}
            self.kinds = {s: encode_long(i) for i, s in enumerate(fields["kind"]["symbols"])}
            self.outcomes = {s: encode_long(i) for i, s in enumerate(fields["outcome"]["symbols"])}
            self.strings: dict[str, bytes] = {}   # sla names, policy versions, teams: they repeat
        if not self.fast:
            log.warning("sla_outcome schema changed: the fast encoder is off (the codec encodes)")

    def _string(self, text: str) -> bytes:
        raw = self.strings.get(text)
        if raw is None:
            data = text.encode("utf-8")
            raw = encode_long(len(data)) + data
            if len(self.strings) < 10_000:
                self.strings[text] = raw
        return raw

    def encode(self, clock, kind: str, policy_version: str, clock_id: str, emitted_at: datetime,
               late: bool = False) -> bytes | None:
        if not self.fast:
            return None
        try:
            kind_b = self.kinds.get(kind)
            outcome_b = self.outcomes.get(clock.outcome or "open")
            if kind_b is None or outcome_b is None:
                return None
            started, due, stopped = clock.started_at, clock.due_at, clock.stopped_at
            for moment in (started, due, stopped, emitted_at):
                if moment is not None and moment.tzinfo is None:
                    return None
            if clock.required is not None:
                attempts, required = clock.attempts, clock.required
                if not (_INT_MIN <= attempts <= _INT_MAX and _INT_MIN <= required <= _INT_MAX):
                    return None
                ints = b"\x02" + encode_long(attempts) + b"\x02" + encode_long(required)
            else:
                ints = b"\x00\x00"
            lead = clock.lead_id.encode("utf-8")
            cid = clock_id.encode("utf-8")
            team = clock.team
            return b"".join((
                self.header, kind_b, self._string(clock.sla), b"\x02", encode_long(len(lead)), lead,
                b"\x00",                                       # scope: an empty map
                encode_long(len(cid)), cid, outcome_b, encode_long(_micros(started)),
                b"\x00" if due is None else b"\x02" + encode_long(_micros(due)),
                b"\x00" if stopped is None else b"\x02" + encode_long(_micros(stopped)),
                b"\x00\x00\x00\x00\x00",                       # window_start/end, count, target, fit_share
                ints, b"\x01" if clock.corrected else b"\x00", self._string(policy_version),
                b"\x00" if team is None else b"\x02" + self._string(team),
                encode_long(_micros(emitted_at)), b"\x01" if late else b"\x00",
            ))
        except (UnicodeEncodeError, TypeError, AttributeError, OverflowError):
            return None
