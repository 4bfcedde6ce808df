"""The OpenAPI 3.1 document of the ingest HTTP API, generated from the code that enforces it.

The event schemas come from `PAYLOAD_RULES` and the envelope limits in
services/common/envelope.py, and the request limits from services/ingest/request_body.py, so
the document cannot drift from validation. The committed copy is schemas/openapi.json;
regenerate it with `python -m services.ingest.openapi --write` (a test compares the two).

What JSON Schema cannot say is written in descriptions: the 5-minutes-ahead rule, calendar
validity of dates (February 30), and that ids must be valid Unicode (no lone surrogates).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.common.envelope import (
    BOOLEAN,
    EVENT_TYPES,
    INTEGER,
    MAX_FUTURE_SKEW,
    MAX_ID_LEN,
    MAX_SOURCE_LEN,
    NUMBER,
    PAYLOAD_RULES,
    RFC3339_PATTERN,
    TEXT,
    TIMESTAMP,
    WHITESPACE,
    FieldRule,
)
from services.ingest.request_body import (
    JSON_MEDIA_TYPE,
    MAX_EVENT_BYTES,
    MAX_EVENTS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    NDJSON_MEDIA_TYPES,
)

OPENAPI_JSON_PATH = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"
API_VERSION = "1.0.0"  # the HTTP API's version, not the package's
SCHEMAS = "#/components/schemas/"
# Contains a character that is not Unicode White_Space: what parse_event calls "not empty".
NON_BLANK_PATTERN = "[^" + WHITESPACE + "]"


def event_schema_name(event_type: str) -> str:
    """`lead.marketing_qualified` -> `LeadMarketingQualifiedEvent`."""
    words = event_type.replace(".", "_").split("_")
    return "".join(w.capitalize() for w in words) + "Event"


def payload_schema_name(event_type: str) -> str:
    return event_schema_name(event_type).removesuffix("Event") + "Payload"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def field_schema(rule: FieldRule) -> dict[str, Any]:
    """The JSON Schema of one known payload field. Optional fields may be null (meaning absent)."""
    if rule.kind == TEXT:
        schema: dict[str, Any] = {"type": "string"}
        if rule.choices is not None:
            schema["enum"] = list(rule.choices)
        elif rule.required:
            schema.update(minLength=1, pattern=NON_BLANK_PATTERN)
    elif rule.kind == TIMESTAMP:
        schema = {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}
    elif rule.kind in (INTEGER, NUMBER, BOOLEAN):
        schema = {"type": rule.kind}
        if rule.minimum is not None:
            schema["minimum"] = rule.minimum
    else:
        raise ValueError(f"no JSON Schema for payload field kind {rule.kind!r}")
    if not rule.required:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"].append(None)
    if rule.examples:
        schema["examples"] = list(rule.examples)
    return schema


def payload_schema(event_type: str) -> dict[str, Any]:
    rules = PAYLOAD_RULES[event_type]
    schema: dict[str, Any] = {
        "type": "object",
        "description": f"Payload of {event_type}. Unknown extra fields are kept as sent, not rejected.",
        "properties": {name: field_schema(rule) for name, rule in rules.items()},
        "additionalProperties": True,
    }
    required = [name for name, rule in rules.items() if rule.required]
    if required:
        schema["required"] = required
    return schema


def event_type_schema(event_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": event_type,
        "required": ["event_id", "lead_id", "type", "occurred_at", "source", "payload"],
        "properties": {
            "event_id": _ref("EventId"),
            "lead_id": _ref("LeadId"),
            "type": {"const": event_type},
            "occurred_at": _ref("OccurredAt"),
            "source": _ref("Source"),
            "payload": _ref(payload_schema_name(event_type)),
        },
        "additionalProperties": True,
    }


def event_component_schemas() -> dict[str, dict[str, Any]]:
    """`Event` (oneOf the types, discriminated by `type`), one schema per type and its payload,
    and the envelope field schemas they share."""
    skew_minutes = int(MAX_FUTURE_SKEW.total_seconds() // 60)
    schemas: dict[str, dict[str, Any]] = {
        "Event": {
            "description": (
                "One lead event (contract §1-2). Unknown top-level fields are ignored; unknown "
                "payload fields are kept as sent."
            ),
            "oneOf": [_ref(event_schema_name(t)) for t in EVENT_TYPES],
            "discriminator": {
                "propertyName": "type",
                "mapping": {t: SCHEMAS + event_schema_name(t) for t in EVENT_TYPES},
            },
        },
        "EventId": {
            "type": "string", "minLength": 1, "maxLength": MAX_ID_LEN,
            "description": "Unique per event; a repeated id is a duplicate and has no effect. Valid Unicode text.",
        },
        "LeadId": {
            "type": "string", "minLength": 1, "maxLength": MAX_ID_LEN,
            "description": "The lead; the Kafka key, so all of a lead's events stay in order. Valid Unicode text.",
        },
        "Source": {
            "type": "string", "minLength": 1, "maxLength": MAX_SOURCE_LEN,
            "description": "The publishing system.", "examples": ["website", "hubspot", "salesforce", "dialer"],
        },
        "OccurredAt": {
            "type": "string", "format": "date-time", "pattern": RFC3339_PATTERN,
            "description": (
                "When it happened upstream: RFC 3339 with an offset, stored in UTC (fractions "
                f"beyond microseconds are cut). Over HTTP, more than {skew_minutes} minutes "
                "ahead of the server's clock is refused. Seconds 00-59 (no leap second)."
            ),
            "examples": ["2026-11-02T09:00:00+01:00"],
        },
    }
    for event_type in EVENT_TYPES:
        schemas[event_schema_name(event_type)] = event_type_schema(event_type)
        schemas[payload_schema_name(event_type)] = payload_schema(event_type)
    return schemas


def _response_schemas() -> dict[str, dict[str, Any]]:
    return {
        "Refusal": {
            "type": "object",
            "required": ["index", "field", "reason"],
            "properties": {
                "index": {"type": "integer", "minimum": 0,
                          "description": "0-based position of the event in the body (blank NDJSON lines do not count)."},
                "field": {"type": "string",
                          "description": "Dotted path of the field that broke a rule (payload.score); empty for the event as a whole."},
                "reason": {"type": "string"},
            },
        },
        "IngestResult": {
            "type": "object",
            "required": ["accepted", "refused", "errors"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0,
                             "description": "Valid events written to the event log."},
                "refused": {"type": "integer", "minimum": 0},
                "errors": {"type": "array", "items": _ref("Refusal")},
            },
        },
        "RequestError": {
            "type": "object",
            "required": ["error", "reason"],
            "properties": {"error": {"type": "string"}, "reason": {"type": "string"}},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "ready", "not_ready"]},
                "checks": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "Each dependency and its state, e.g. {\"kafka\": \"ok\"}."},
            },
        },
    }


def _json_response(description: str, schema: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON_MEDIA_TYPE: {"schema": _ref(schema)}}, **extra}


def _post_events() -> dict[str, Any]:
    return {
        "operationId": "postEvents",
        "summary": "Publish lead events",
        "description": (
            f"One event, a JSON array of events, or NDJSON (one event per line). At most "
            f"{MAX_EVENTS_PER_REQUEST} events and {MAX_REQUEST_BYTES} bytes per request, "
            f"{MAX_EVENT_BYTES} bytes per event. Each event is validated on its own: the valid "
            "ones are written to the event log, each refused one is listed with its index, field "
            "and reason. Repeating an event (same event_id) is safe: it is a duplicate and has no "
            "effect, so a request may be retried."
        ),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {
                "name": "X-Leadflow-Timestamp", "in": "header", "required": False,
                "description": (
                    "Unix time in seconds when the request was signed. Required with "
                    "X-Leadflow-Signature; must be within 5 minutes of the server's clock."
                ),
                "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
            },
            {
                "name": "X-Leadflow-Signature", "in": "header", "required": False,
                "description": (
                    "Optional request signature, required when the server has a signing secret: "
                    "sha256=<hex of HMAC-SHA256(secret, timestamp + \".\" + raw body)>, where "
                    "timestamp is the X-Leadflow-Timestamp value."
                ),
                "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {
                    "schema": {
                        "oneOf": [
                            _ref("Event"),
                            {"type": "array", "items": _ref("Event"), "minItems": 1,
                             "maxItems": MAX_EVENTS_PER_REQUEST},
                        ]
                    }
                },
                NDJSON_MEDIA_TYPES[0]: {
                    "schema": {
                        **_ref("Event"),
                        "description": (
                            f"One Event per line (this schema is that of one line); blank lines are "
                            f"skipped. {NDJSON_MEDIA_TYPES[1]} is accepted too."
                        ),
                    },
                },
            },
        },
        "responses": {
            "202": _json_response("At least one event was valid and is in the event log; refused ones are listed.",
                                  "IngestResult"),
            "400": _json_response("The body cannot be read as events: not UTF-8, broken JSON in a JSON body, "
                                  "or no event in it.", "RequestError"),
            "401": _json_response(
                "Missing or wrong bearer token, or a missing, wrong or stale signature.", "RequestError",
                headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
            ),
            "413": _json_response(f"More than {MAX_REQUEST_BYTES} bytes or {MAX_EVENTS_PER_REQUEST} events, "
                                  f"or a single-event body over {MAX_EVENT_BYTES} bytes; nothing was accepted.",
                                  "RequestError"),
            "415": _json_response(f"Content type other than {JSON_MEDIA_TYPE} or NDJSON.", "RequestError"),
            "422": _json_response("No event was valid; each is listed with its index, field and reason.",
                                  "IngestResult"),
            "503": _json_response(
                "The event log cannot be written now; nothing was accepted. Retry later.", "RequestError",
                headers={"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
            ),
        },
    }


def _open_get(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "summary": summary, "security": [], "responses": responses}}


def _keyed_get(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    """A GET that needs an API key (any configured one) unless the server runs without keys."""
    unauthorized = _json_response("Keys are configured and the bearer token is missing or wrong.", "RequestError",
                                  headers={"WWW-Authenticate": {"schema": {"type": "string"}}})
    return {"get": {"operationId": operation_id, "summary": summary, "security": [{"bearerAuth": []}],
                    "responses": {**responses, "401": unauthorized}}}


def build_openapi() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "leadflow ingest API",
            "version": API_VERSION,
            "description": "Upstream systems publish lead events here; see the event contract for their meaning.",
        },
        "paths": {
            "/v1/events": {"post": _post_events()},
            "/healthz": _open_get("getHealth", "Liveness: the process is up", {
                "200": _json_response("Up.", "Health"),
            }),
            "/readyz": _open_get("getReadiness", "Readiness: events can be accepted", {
                "200": _json_response("Ready: the event log can be written.", "Health"),
                "503": _json_response("Not ready; checks says what is missing.", "Health"),
            }),
            "/metrics": _keyed_get("getMetrics", "Prometheus metrics", {
                "200": {"description": "Prometheus text exposition format.",
                        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}},
            }),
            "/openapi.json": _keyed_get("getOpenApi", "This document", {
                "200": {"description": "The OpenAPI document.",
                        "content": {JSON_MEDIA_TYPE: {"schema": {"type": "object"}}}},
            }),
        },
        "components": {
            "schemas": {**event_component_schemas(), **_response_schemas()},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "The ingest token given to the upstream system."},
            },
        },
    }


def render_openapi() -> str:
    """The document as committed: stable key order, two-space indent, ASCII (the whitespace
    characters in patterns stay visible as escapes), final newline."""
    return json.dumps(build_openapi(), indent=2, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        OPENAPI_JSON_PATH.write_text(render_openapi(), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m services.ingest.openapi [--write]", file=sys.stderr)
        return 2
    sys.stdout.write(render_openapi())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
