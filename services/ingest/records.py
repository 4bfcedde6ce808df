"""What ingest writes: the leadflow.events record of a valid event (both paths encode it the same
way) and the leadflow.dlq record of a bad inbound one. Pure code."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.common.avro_codec import AvroCodec, AvroCodecError, event_to_avro
from services.common.envelope import Event, InvalidEvent
from services.common.kafka import lead_key
from services.ingest.request_body import MAX_EVENT_BYTES

Headers = list[tuple[str, bytes]]

# leadflow.dlq headers
ERROR_FIELD = "leadflow-error-field"
ERROR_REASON = "leadflow-error-reason"
ORIGIN_TOPIC = "leadflow-origin-topic"
ORIGIN_PARTITION = "leadflow-origin-partition"
ORIGIN_OFFSET = "leadflow-origin-offset"
MAX_REASON_CHARS = 1000
_OURS = frozenset({ERROR_FIELD, ERROR_REASON, ORIGIN_TOPIC, ORIGIN_PARTITION, ORIGIN_OFFSET})


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


def error_field(exc: InvalidEvent) -> str:
    """The field a refusal names: `json` when the value as a whole was wrong (not an object)."""
    return exc.field or "json"


def event_record(codec: AvroCodec, topic: str, event: Event, via: str) -> OutRecord:
    """Key lead_id (UTF-8), value the Avro single-object encoded envelope, headers source and
    ingest-via. InvalidEvent (field `payload`) when the event cannot be encoded."""
    try:
        value = codec.encode(event_to_avro(event))
    except AvroCodecError as exc:
        raise InvalidEvent("payload", f"cannot be encoded: {exc}") from None
    except RecursionError:
        raise InvalidEvent("payload", "is nested too deeply") from None
    headers = [("source", event.source.encode("utf-8")), ("ingest-via", via.encode("ascii"))]
    return OutRecord(topic, lead_key(event.lead_id), value, headers)


def dlq_record(topic: str, record: Any, field: str, reason: str) -> OutRecord:
    """The bad inbound record byte for byte (same key and value, its own headers kept except old
    copies of ours, e.g. from a record re-sent out of the DLQ), with the reason and its origin in headers."""
    headers: Headers = [(k, v) for k, v in (record.headers or ()) if k not in _OURS]
    headers += [
        (ERROR_FIELD, field.encode("utf-8")),
        (ERROR_REASON, reason[:MAX_REASON_CHARS].encode("utf-8", "replace")),
        (ORIGIN_TOPIC, record.topic.encode("utf-8")),
        (ORIGIN_PARTITION, str(record.partition).encode("ascii")),
        (ORIGIN_OFFSET, str(record.offset).encode("ascii")),
    ]
    return OutRecord(topic, record.key, record.value, headers)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Strict JSON, as over HTTP: NaN and Infinity are not JSON.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def decode_record_value(value: bytes | None) -> Any:
    """The JSON value of one `leadflow.inbound` record (one event as UTF-8 JSON, at most 64 KiB, as
    over HTTP). ValueError with a short reason when it is not one."""
    if value is None:
        raise ValueError("the record has no value (a tombstone)")
    if len(value) > MAX_EVENT_BYTES:
        raise ValueError(f"the event is larger than {MAX_EVENT_BYTES} bytes ({len(value)})")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the record is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("the record is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"the record is not valid JSON: {exc}") from None
