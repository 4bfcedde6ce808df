"""Avro single-object encoding of the schemas in `schemas/` (the values of leadflow.events,
leadflow.lifecycle and leadflow.sla).

A message is the marker `C3 01`, the writer schema's CRC-64-AVRO fingerprint (8 bytes,
little-endian, of its parsing canonical form), then the Avro binary body. The fingerprint lets a
reader pick the writer schema: a codec reads its current schema and every released version kept
under `schemas/history/<name>/vN.avsc` (resolved to the current schema), and refuses any other.

Schemas are parsed once, at construction; a codec reuses one output buffer, so use one codec per
thread (the services are asyncio, one thread each).
"""
from __future__ import annotations

import json
import re
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from services.common.envelope import Event


def find_schema_dir(source_file: Path, cwd: Path) -> Path:
    """schemas/ of the source tree (a checkout or an editable install), else ./schemas: an
    installed wheel has no source tree, and the container image copies schemas/ into its
    working directory."""
    beside_source = source_file.resolve().parents[2] / "schemas"
    return beside_source if beside_source.is_dir() else cwd / "schemas"


SCHEMA_DIR = find_schema_dir(Path(__file__), Path.cwd())
SCHEMA_NAMES: tuple[str, ...] = ("event_envelope", "lifecycle_record", "sla_outcome")
SINGLE_OBJECT_MARKER = b"\xc3\x01"
HEADER_LEN = len(SINGLE_OBJECT_MARKER) + 8
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


class AvroCodecError(ValueError):
    """Bytes that are not a message this codec can read, or a record it cannot write."""


class UnknownSchemaFingerprint(AvroCodecError):
    """A well-formed message written with a schema this codec does not know."""

    def __init__(self, schema_name: str, fingerprint: bytes) -> None:
        super().__init__(
            f"{schema_name}: unknown writer schema fingerprint {fingerprint.hex()} "
            "(not the current schema nor a released version under schemas/history)"
        )
        self.schema_name = schema_name
        self.fingerprint = fingerprint


def load_schema_json(schema_name: str, schema_dir: Path | None = None) -> dict[str, Any]:
    """The current schema `schemas/<name>.avsc` as JSON."""
    path = (schema_dir or SCHEMA_DIR) / f"{schema_name}.avsc"
    return json.loads(path.read_text(encoding="utf-8"))


def released_versions(schema_name: str, schema_dir: Path | None = None) -> dict[int, dict[str, Any]]:
    """Every released version of a schema, `schemas/history/<name>/vN.avsc`, by N ascending."""
    folder = (schema_dir or SCHEMA_DIR) / "history" / schema_name
    found: dict[int, dict[str, Any]] = {}
    for path in folder.glob("*.avsc"):
        match = _VERSION_FILE.match(path.name)
        if match is None:
            raise AvroCodecError(f"{path}: released schemas are named vN.avsc")
        found[int(match.group(1))] = json.loads(path.read_text(encoding="utf-8"))
    return dict(sorted(found.items()))


def schema_fingerprint(schema_json: Any) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, as the 8 little-endian bytes a message carries."""
    canonical = to_parsing_canonical_form(parse_schema(schema_json, _write_hint=False))
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


class AvroCodec:
    """Encode and decode one schema's records as single-object encoded messages."""

    def __init__(self, schema_name: str, schema_dir: Path | None = None) -> None:
        current = load_schema_json(schema_name, schema_dir)
        self.schema_name = schema_name
        self.schema = parse_schema(current)
        self.fingerprint = schema_fingerprint(current)
        self.header = SINGLE_OBJECT_MARKER + self.fingerprint
        # Older writer schemas by fingerprint; the current one maps to None (no resolution needed).
        self._writer_schemas: dict[bytes, Any] = {}
        for old in released_versions(schema_name, schema_dir).values():
            self._writer_schemas[schema_fingerprint(old)] = parse_schema(old)
        self._writer_schemas[self.fingerprint] = None
        # The header stays in the buffer; each encode rewinds to just after it.
        self._out = BytesIO()
        self._out.write(self.header)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        out = self._out
        out.seek(HEADER_LEN)
        out.truncate()
        try:
            schemaless_writer(out, self.schema, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise AvroCodecError(f"{self.schema_name}: cannot encode record: {exc!r}") from exc
        return out.getvalue()

    def encode_many(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        encode = self.encode
        return [encode(record) for record in records]

    def decode(self, message: bytes) -> dict[str, Any]:
        if message[:2] != SINGLE_OBJECT_MARKER or len(message) < HEADER_LEN:
            raise AvroCodecError(
                f"{self.schema_name}: not an Avro single-object message (marker C3 01 and an 8-byte fingerprint)"
            )
        fingerprint = bytes(message[2:HEADER_LEN])
        try:
            writer_schema = self._writer_schemas[fingerprint]
        except KeyError:
            raise UnknownSchemaFingerprint(self.schema_name, fingerprint) from None
        body = BytesIO(message)
        body.seek(HEADER_LEN)
        try:
            if writer_schema is None:
                record = schemaless_reader(body, self.schema, None)
            else:
                record = schemaless_reader(body, writer_schema, self.schema)
        except Exception as exc:  # fastavro raises many kinds (EOFError, ValueError, ...) on corrupt bodies
            raise AvroCodecError(f"{self.schema_name}: corrupt message body: {exc!r}") from exc
        if body.tell() != len(message):
            raise AvroCodecError(f"{self.schema_name}: {len(message) - body.tell()} bytes left after the record")
        return record

    def decode_many(self, messages: Iterable[bytes]) -> list[dict[str, Any]]:
        decode = self.decode
        return [decode(message) for message in messages]


def load_codecs(schema_dir: Path | None = None) -> dict[str, AvroCodec]:
    """One codec per schema in `schemas/`, by schema name."""
    return {name: AvroCodec(name, schema_dir) for name in SCHEMA_NAMES}


def _payload_json_codec() -> tuple[Callable[[Any], str], Callable[[str], Any]]:
    """Compact JSON text for payloads and back, as fast as the stdlib allows.

    ASCII output keeps any Python string (even a lone surrogate) representable; NaN is not JSON,
    so it is refused. json.dumps/loads build an encoder or check trailing text on every call; the
    C encoder and scanner built once here skip that (about 1 µs per event each way) and fall back
    to the plain json classes where CPython's C accelerators are missing.
    """
    encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    decoder = json.JSONDecoder()
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii
        from json.scanner import c_make_scanner

        make = c_make_encoder(None, encoder.default, encode_basestring_ascii, None, ":", ",", False, False, False)
        scan = c_make_scanner(decoder)
    except (ImportError, TypeError):
        return encoder.encode, decoder.decode

    def encode(payload: Any) -> str:
        return "".join(make(payload, 0))

    def decode(text: str) -> Any:
        # Only our own writer's text is read here, but anything else (leading or trailing
        # whitespace, bad JSON) goes through the full decoder, which accepts or raises exactly.
        try:
            value, end = scan(text, 0)
        except StopIteration:
            return decoder.decode(text)
        return value if end == len(text) else decoder.decode(text)

    return encode, decode


_encode_payload, _decode_payload = _payload_json_codec()
# The payload JSON reader event_from_avro uses, for fast paths that build their Events themselves.
decode_payload_json = _decode_payload


def event_to_avro(event: Event) -> dict[str, Any]:
    """The event_envelope record of an Event; the payload goes as JSON text, unknown fields and all."""
    try:
        payload_json = _encode_payload(event.payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise AvroCodecError(f"event {event.event_id}: payload is not JSON: {exc}") from exc
    return {
        "event_id": event.event_id,
        "lead_id": event.lead_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "source": event.source,
        "payload_json": payload_json,
    }


def event_from_avro(record: Mapping[str, Any]) -> Event:
    """The Event of an event_envelope record (already validated when it was encoded)."""
    try:
        payload = _decode_payload(record["payload_json"])
    except (ValueError, RecursionError) as exc:
        raise AvroCodecError(f"event {record['event_id']}: payload_json is not JSON: {exc}") from exc
    return Event(
        record["event_id"], record["lead_id"], record["type"], record["occurred_at"], record["source"], payload
    )
