"""Reading and validating a `POST /v1/events` body: one JSON object, a JSON array of them, or
NDJSON (one per line). Pure: bytes in, events and refusals out; the HTTP server maps the result
to a status (see services/ingest/openapi.py, which documents exactly this behaviour).

- The body as a whole: more than MAX_REQUEST_BYTES or MAX_EVENTS_PER_REQUEST events, or a body
  that is one event (a JSON object) larger than MAX_EVENT_BYTES, is 413;
  an unknown content type is 415; a body that cannot be read as events (not UTF-8, broken JSON
  in a JSON body, nothing in it) is 400. Nothing of such a body is accepted.
- Each event of an array or NDJSON on its own: larger than MAX_EVENT_BYTES, broken JSON on an
  NDJSON line, or any
  parse_event refusal refuses that event only, with its index (0-based position among the
  body's events; blank NDJSON lines do not count), the field and the reason.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.envelope import Event, InvalidEvent, parse_event

MAX_REQUEST_BYTES = 1 << 20  # 1 MiB
MAX_EVENTS_PER_REQUEST = 1000
MAX_EVENT_BYTES = 64 << 10  # 64 KiB
JSON_MEDIA_TYPE = "application/json"
NDJSON_MEDIA_TYPES = ("application/x-ndjson", "application/ndjson")
_JSON_WHITESPACE = " \t\n\r"


class BodyRejected(Exception):
    """The whole request is refused; `status` is the HTTP status (400, 413 or 415)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Refusal:
    index: int
    field: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(slots=True)
class ValidatedBody:
    """The valid events (with their index in the body) and the refused ones."""

    events: list[tuple[int, Event]] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def status(self) -> int:
        """202 when any event is valid (the valid ones are accepted), else 422."""
        return 202 if self.events else 422

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": len(self.events),
            "refused": len(self.refusals),
            "errors": [r.to_json() for r in self.refusals],
        }


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's json reads NaN and Infinity by default; JSON has neither.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def _media_type(content_type: str | None) -> str:
    return (content_type or JSON_MEDIA_TYPE).split(";", 1)[0].strip().lower()


def read_events(body: bytes, content_type: str | None) -> list[Any | InvalidEvent]:
    """The body's events as decoded JSON values, in order; an event that could not even be
    decoded is an InvalidEvent in its place. Raises BodyRejected for the request as a whole."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BodyRejected(413, f"the body is larger than {MAX_REQUEST_BYTES} bytes")
    media_type = _media_type(content_type)
    if media_type in NDJSON_MEDIA_TYPES:
        items = _read_ndjson(body)
    elif media_type == JSON_MEDIA_TYPE:
        items = _read_json(body)
    else:
        raise BodyRejected(415, f"content type must be {JSON_MEDIA_TYPE} or {NDJSON_MEDIA_TYPES[0]}")
    if not items:
        raise BodyRejected(400, "the body has no events")
    return items


def _too_many_events() -> BodyRejected:
    return BodyRejected(413, f"more than {MAX_EVENTS_PER_REQUEST} events in one request")


def _too_large(size: int) -> InvalidEvent:
    return InvalidEvent("", f"the event is larger than {MAX_EVENT_BYTES} bytes ({size})")


def _checked_size(value: Any, text: str, start: int, end: int) -> Any | InvalidEvent:
    """The value of text[start:end], or the refusal when its UTF-8 form passes the limit."""
    # A character is 1–4 bytes: only a span that might pass the limit is encoded to measure it.
    if (end - start) * 4 <= MAX_EVENT_BYTES:
        return value
    size = len(text[start:end].encode("utf-8"))
    return _too_large(size) if size > MAX_EVENT_BYTES else value


def _read_json(body: bytes) -> list[Any | InvalidEvent]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyRejected(400, f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    if start == len(text):
        return []
    try:
        if text[start] != "[":
            value = _decoder.decode(text)
            if len(body) > MAX_EVENT_BYTES:  # the request is one event, over the limit: 413
                raise BodyRejected(413, f"the event is larger than {MAX_EVENT_BYTES} bytes ({len(body)})")
            return [value]
        return _read_json_array(text, start)
    except ValueError as exc:  # JSONDecodeError, or a NaN/Infinity constant
        raise BodyRejected(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BodyRejected(400, "the body is not valid JSON here: nested too deeply") from None


def _skip_whitespace(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_WHITESPACE:
        pos += 1
    return pos


def _read_json_array(text: str, pos: int) -> list[Any | InvalidEvent]:
    """Elements one by one, so each event's size is known and a huge array stops early."""
    items: list[Any | InvalidEvent] = []
    pos = _skip_whitespace(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        end = pos + 1
    else:
        while True:
            if len(items) == MAX_EVENTS_PER_REQUEST:
                raise _too_many_events()
            value, end = _decoder.raw_decode(text, pos)
            items.append(_checked_size(value, text, pos, end))
            pos = _skip_whitespace(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip_whitespace(text, pos + 1)
                continue
            if pos < len(text) and text[pos] == "]":
                end = pos + 1
                break
            raise ValueError(f"expected ',' or ']' at character {pos}")
    if _skip_whitespace(text, end) != len(text):
        raise ValueError(f"extra data after the array at character {end}")
    return items


def _read_ndjson(body: bytes) -> list[Any | InvalidEvent]:
    items: list[Any | InvalidEvent] = []
    for line in body.split(b"\n"):
        line = line.strip(b" \t\r")
        if not line:
            continue
        if len(items) == MAX_EVENTS_PER_REQUEST:
            raise _too_many_events()
        if len(line) > MAX_EVENT_BYTES:
            items.append(_too_large(len(line)))
            continue
        try:
            items.append(_decoder.decode(line.decode("utf-8")))
        except UnicodeDecodeError as exc:
            items.append(InvalidEvent("", f"the line is not UTF-8 ({exc.reason} at byte {exc.start})"))
        except ValueError as exc:
            items.append(InvalidEvent("", f"the line is not valid JSON: {exc}"))
        except RecursionError:
            items.append(InvalidEvent("", "the line is nested too deeply"))
    return items


def validate_body(body: bytes, content_type: str | None, *, now: datetime) -> ValidatedBody:
    """Every event of the body through parse_event (with the 5-minutes-ahead rule at `now`).
    Raises BodyRejected for the request as a whole."""
    result = ValidatedBody()
    for index, item in enumerate(read_events(body, content_type)):
        try:
            if isinstance(item, InvalidEvent):
                raise item
            result.events.append((index, parse_event(item, now=now)))
        except InvalidEvent as exc:
            result.refusals.append(Refusal(index, exc.field, exc.reason))
    return result
