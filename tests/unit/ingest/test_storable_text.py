"""Text PostgreSQL cannot store (NUL, lone surrogates) is refused at the door, naming where it is,
instead of being accepted and then jamming the event store."""
from __future__ import annotations

import pytest

from services.common.envelope import InvalidEvent, parse_event
from services.common.timefmt import parse_rfc3339


def _event(**changes):
    base = {"event_id": "e1", "lead_id": "L1", "type": "lead.activity", "occurred_at": "2026-11-02T08:00:00Z",
            "source": "website", "payload": {"kind": "download"}}
    base.update(changes)
    return base


@pytest.mark.parametrize("name", ["event_id", "lead_id", "source"])
def test_nul_in_an_envelope_string_is_refused(name):
    with pytest.raises(InvalidEvent) as info:
        parse_event(_event(**{name: "a\x00b"}))
    assert (info.value.field, info.value.reason) == (name, "must not contain the NUL character (U+0000)")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "download", "asset": "white\x00paper"}, "payload.asset"),
        ({"kind": "download", "extra": {"deep": ["ok", "bad\x00"]}}, "payload.extra.deep[1]"),
        ({"kind": "download", "key\x00": 1}, "payload"),
    ],
)
def test_nul_anywhere_in_the_payload_is_refused_with_its_path(payload, field):
    with pytest.raises(InvalidEvent) as info:
        parse_event(_event(payload=payload))
    assert info.value.field == field
    assert "NUL" in info.value.reason


def test_lone_surrogate_in_payload_is_refused():
    with pytest.raises(InvalidEvent) as info:
        parse_event(_event(payload={"kind": "download", "note": "x\ud800y"}))
    assert info.value.field == "payload.note"
    assert "lone surrogates" in info.value.reason


def test_ordinary_unicode_payload_is_kept():
    event = parse_event(_event(payload={"kind": "download", "note": "Überprüfung 线索 ação 🚀"}))
    assert event.payload["note"] == "Überprüfung 线索 ação 🚀"


@pytest.mark.parametrize("text", ["2026-11-02T08:00:00Z\n", "２０26-11-02T08:00:00Z", "9999-12-31T23:59:59-01:00"])
def test_timestamps_that_only_look_valid_are_refused(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)
