"""One consumed batch through the lifecycle domain: decode, deduplicate, apply, and lay out the rows
and the records to publish. Pure: no I/O, no clock; the service does the queries around it.

The service calls, per batch round:

    decoded = decode_partition(decoder, records)   # per partition; = decode_record per record
    known   = {lead_id: LeadEntry | None}   # from its caches, the rest with ONE query
    seen    = {event_id already stored}     # ONE query
    plan    = plan_round(topic, parts, known, seen, encoder)
    ... one transaction: plan.event_rows (COPY), plan.duplicate_rows, plan.lead_columns() ...
    ... then per partition, one Kafka transaction with plan.parts[i].outputs ...
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from services.common.avro_codec import event_from_avro
from services.common.envelope import Event
from services.common.kafka import lead_key
from services.lifecycle.domain import LeadState, Transition, apply_event
from services.lifecycle.wire import envelope_record

# Column order of the COPY into lead_events (recorded_at takes its default, now()).
EVENT_COLUMNS: tuple[str, ...] = (
    "lead_id", "version", "event_id", "type", "occurred_at", "source", "payload",
    "from_stage", "to_stage", "ignored", "channel", "segment", "fit", "owner", "team",
    "kafka_topic", "kafka_partition", "kafka_offset",
)
DUPLICATE_COLUMNS: tuple[str, ...] = (
    "event_id", "lead_id", "type", "occurred_at", "source", "payload",
    "kafka_topic", "kafka_partition", "kafka_offset",
)
UNREADABLE_COLUMNS: tuple[str, ...] = (
    "kafka_topic", "kafka_partition", "kafka_offset", "record_key", "record_value", "error",
)


class LeadEntry:
    """A lead as the projection holds it: the domain state plus the projection's event times."""

    __slots__ = ("state", "created_at", "updated_at", "stage_entered_at")

    def __init__(self, state: LeadState, created_at: datetime, updated_at: datetime,
                 stage_entered_at: datetime) -> None:
        self.state = state
        self.created_at = created_at
        self.updated_at = updated_at
        self.stage_entered_at = stage_entered_at

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LeadEntry) and (
            self.state, self.created_at, self.updated_at, self.stage_entered_at
        ) == (other.state, other.created_at, other.updated_at, other.stage_entered_at)

    def __repr__(self) -> str:
        return (f"LeadEntry({self.state!r}, created_at={self.created_at}, updated_at={self.updated_at}, "
                f"stage_entered_at={self.stage_entered_at})")


def next_entry(prev: LeadEntry | None, state: LeadState, occurred_at: datetime) -> LeadEntry:
    """The projection after one applied event: the one rule for the service and `leadflow rebuild`.

    created_at is the event time of version 1; updated_at that of the latest applied event (log
    order, so it can go back in time when upstream sends late events); stage_entered_at that of the
    event that moved the lead into its current stage (for a new lead, its first event).
    """
    if prev is None:
        return LeadEntry(state, occurred_at, occurred_at, occurred_at)
    entered = occurred_at if state.stage != prev.state.stage else prev.stage_entered_at
    return LeadEntry(state, prev.created_at, occurred_at, entered)


# --- decoding -------------------------------------------------------------------------------------

class Decoded:
    """One input record: its event and envelope record, or why it cannot be read.

    `payload_json` is the envelope's payload text. A record read by the fast decoder has no
    envelope dict until something asks for `envelope` (the lifecycle record splices the input
    message's bytes instead)."""

    __slots__ = ("offset", "key", "value", "event", "_envelope", "error", "payload_json")

    def __init__(self, offset: int, key: bytes | None, value: Any, event: Event | None,
                 envelope: dict | None, error: str | None, payload_json: str | None = None) -> None:
        self.offset = offset
        self.key = key
        self.value = value
        self.event = event
        self._envelope = envelope
        self.error = error
        self.payload_json = envelope["payload_json"] if envelope is not None else payload_json

    @property
    def envelope(self) -> dict | None:
        envelope = self._envelope
        if envelope is None and self.event is not None:
            envelope = self._envelope = envelope_record(self.event, self.payload_json)  # type: ignore[arg-type]  # a decoded event has its payload text
        return envelope


def decode_record(codec, offset: int, key: bytes | None, value: Any) -> Decoded:
    """An input record of leadflow.events, or the reason it cannot be stored as an event.
    `codec`: a wire.EnvelopeDecoder (its fast reader first), or anything with
    `decode(message) -> envelope record` (an AvroCodec). `value` is bytes from Kafka; anything
    else (None, a memoryview...) goes to the codec, which reads or explains it."""
    read = getattr(codec, "read", None)
    if read is not None and type(value) is bytes:
        got = read(value)   # None: not for the fast path (it has no NUL in its strings either)
        if got is not None:
            return Decoded(offset, key, value, got[0], None, None, got[1])
    return _decode_with_codec(codec, offset, key, value)


def decode_partition(codec, records: Iterable[Any]) -> list[Decoded]:
    """`decode_record` of each of one partition's consumed records (anything with `offset`,
    `key`, `value`), in order, in one loop: what the service calls once per partition."""
    read = getattr(codec, "read", None)
    if read is None:
        return [_decode_with_codec(codec, r.offset, r.key, r.value) for r in records]
    out: list[Decoded] = []
    append = out.append
    for r in records:
        value = r.value
        # Only bytes take the fast reader (compiled, it accepts nothing else); the rest, the codec.
        got = read(value) if type(value) is bytes else None
        if got is None:
            append(_decode_with_codec(codec, r.offset, r.key, value))
        else:
            append(Decoded(r.offset, r.key, value, got[0], None, None, got[1]))
    return out


def _decode_with_codec(codec, offset: int, key: bytes | None, value: Any) -> Decoded:
    """The codec's path of decode_record: any schema version, and the error text of a record
    that cannot be read."""
    try:
        envelope = codec.decode(value if value is not None else b"")
        event = event_from_avro(envelope)
    except Exception as exc:  # the codec raises AvroCodecError; a corrupt payload_json a ValueError
        return Decoded(offset, key, value, None, None, f"decode: {exc}"[:500])
    # Postgres text cannot hold NUL: such an id could not be stored as sent.
    if "\x00" in event.event_id or "\x00" in event.lead_id or "\x00" in event.source or "\x00" in event.type:
        return Decoded(offset, key, value, None, None, "an id, type or source holds a NUL character")
    return Decoded(offset, key, value, event, envelope, None)


# JSON escapes Postgres jsonb refuses: \u0000, and UTF-16 surrogates (a lone one is refused; a pair
# is fine, but telling them apart is not worth it on this rare path: both are re-encoded).
_JSONB_UNSAFE = re.compile(r"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
# Written as chr(): a compiled build (mypyc) refuses surrogates in string literals.
_SURROGATE_FIRST, _SURROGATE_LAST = chr(0xD800), chr(0xDFFF)
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value or any(_SURROGATE_FIRST <= ch <= _SURROGATE_LAST for ch in value):
            value = value.replace("\x00", "\ufffd").encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def jsonb_text(payload_json: str) -> str:
    """The payload JSON as Postgres jsonb accepts it: unchanged unless it holds a NUL or a lone
    surrogate, which become U+FFFD (the published record keeps the payload as sent)."""
    if "\\u" not in payload_json or _JSONB_UNSAFE.search(payload_json) is None:
        return payload_json
    return _compact(_clean(json.loads(payload_json)))


# --- the lifecycle record ---------------------------------------------------------------------------

def lifecycle_record(t: Transition, envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The leadflow.lifecycle record of an applied event; `envelope` is its event_envelope record."""
    return {
        "lead_id": t.lead_id, "event_id": t.event_id, "version": t.version,
        "from_stage": t.from_stage, "to_stage": t.to_stage, "ignored": t.ignored,
        "event": envelope,
        "channel": t.channel, "segment": t.segment, "fit": t.fit, "owner": t.owner, "team": t.team,
    }


def lifecycle_record_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The same record rebuilt from a stored lead_events row (for re-publishing after a crash).
    The payload comes back as jsonb prints it: the same JSON value, maybe not the same text."""
    payload = row["payload"]
    if not isinstance(payload, str):
        payload = json.dumps(payload, separators=(",", ":"))
    return {
        "lead_id": row["lead_id"], "event_id": row["event_id"], "version": row["version"],
        "from_stage": row["from_stage"], "to_stage": row["to_stage"], "ignored": row["ignored"],
        "event": {
            "event_id": row["event_id"], "lead_id": row["lead_id"], "type": row["type"],
            "occurred_at": row["occurred_at"], "source": row["source"], "payload_json": payload,
        },
        "channel": row["channel"], "segment": row["segment"], "fit": row["fit"],
        "owner": row["owner"], "team": row["team"],
    }


# --- planning one round ------------------------------------------------------------------------------

@dataclass
class PartitionInput:
    partition: int
    expected: int                 # stored next_offset before this batch
    records: list[Decoded]        # in offset order, all with offset >= expected


@dataclass
class PartitionPlan:
    partition: int
    expected: int
    next_offset: int
    outputs: list[tuple[bytes, bytes]] = field(default_factory=list)   # (key, lifecycle record)
    records: int = 0


@dataclass
class RoundPlan:
    topic: str
    parts: list[PartitionPlan]
    event_rows: list[tuple]
    duplicate_rows: list[tuple]
    unreadable_rows: list[tuple]
    leads: dict[str, tuple[int, LeadEntry]]       # lead_id -> (input partition, entry after the round)
    applied_by_type: Counter
    ignored_by_reason: Counter
    stage_changes: Counter                        # (from or "none", to, channel, segment) -> n
    rejection_reasons: Counter
    duplicates: int

    def lead_columns(self) -> list[list]:
        """The projection rows as columns, for the unnest upsert."""
        cols: list[list] = [[] for _ in range(11)]
        (lid, stage, version, owner, team, channel, segment, fit, created, updated, entered) = cols
        for lead_id, (_p, e) in self.leads.items():
            s = e.state
            lid.append(lead_id)
            stage.append(s.stage)
            version.append(s.version)
            owner.append(s.owner)
            team.append(s.team)
            channel.append(s.channel)
            segment.append(s.segment)
            fit.append(s.fit)
            created.append(e.created_at)
            updated.append(e.updated_at)
            entered.append(e.stage_entered_at)
        return cols


def plan_round(
    topic: str,
    parts: Sequence[PartitionInput],
    known: Mapping[str, LeadEntry | None],
    seen_event_ids: Iterable[str],
    encoder,
) -> RoundPlan:
    """Apply a round's events in log order per partition.

    `known` holds the current entry (or None: never seen) of every lead the round names; `seen_event_ids`
    the round's event ids that are already stored. An event id seen before (stored, or earlier in
    this round) is a duplicate: no version, no effect, recorded in duplicate_rows, not published.
    `encoder.encode(transition, envelope, message)` gives a lifecycle record (wire.LifecycleEncoder).
    """
    current: dict[str, LeadEntry | None] = dict(known)
    seen = set(seen_event_ids)
    event_rows: list[tuple] = []
    duplicate_rows: list[tuple] = []
    unreadable_rows: list[tuple] = []
    leads: dict[str, tuple[int, LeadEntry]] = {}
    applied_by_type: Counter = Counter()
    ignored_by_reason: Counter = Counter()
    stage_changes: Counter = Counter()
    rejection_reasons: Counter = Counter()
    duplicates = 0
    plans: list[PartitionPlan] = []
    encode = encoder.encode
    # The encoder's splice of the input message's bytes (wire.LifecycleEncoder), when it has one:
    # then the envelope dict is built only for the records it leaves to `encode`.
    splice = getattr(encoder, "splice", None) or (lambda _t, _m: None)

    for part in parts:
        partition = part.partition
        plan = PartitionPlan(partition, part.expected, part.expected, records=len(part.records))
        outputs = plan.outputs
        for rec in part.records:
            plan.next_offset = rec.offset + 1
            event = rec.event
            if event is None:
                unreadable_rows.append((topic, partition, rec.offset, rec.key, rec.value, rec.error))
                continue
            payload = jsonb_text(rec.payload_json)  # type: ignore[arg-type]  # a read record has its payload text
            event_id = event.event_id
            if event_id in seen:
                duplicates += 1
                duplicate_rows.append((
                    event_id, event.lead_id, event.type, event.occurred_at, event.source, payload,
                    topic, partition, rec.offset,
                ))
                continue
            seen.add(event_id)
            lead_id = event.lead_id
            prev = current.get(lead_id)
            state, t = apply_event(prev.state if prev is not None else None, event)
            entry = next_entry(prev, state, event.occurred_at)
            current[lead_id] = entry
            leads[lead_id] = (partition, entry)
            event_rows.append((
                lead_id, t.version, event_id, event.type, event.occurred_at, event.source, payload,
                t.from_stage, t.to_stage, t.ignored, t.channel, t.segment, t.fit, t.owner, t.team,
                topic, partition, rec.offset,
            ))
            value = rec.value
            outputs.append((lead_key(lead_id), splice(t, value) or encode(t, rec.envelope, value)))
            applied_by_type[event.type] += 1
            if t.ignored is not None:
                ignored_by_reason[t.ignored] += 1
                continue
            if t.from_stage != t.to_stage:
                stage_changes[(t.from_stage or "none", t.to_stage, t.channel, t.segment)] += 1
            if event.type == "lead.rejected":
                rejection_reasons[event.payload.get("reason")] += 1
        plans.append(plan)

    return RoundPlan(
        topic, plans, event_rows, duplicate_rows, unreadable_rows, leads,
        applied_by_type, ignored_by_reason, stage_changes, rejection_reasons, duplicates,
    )
