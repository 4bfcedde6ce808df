"""The benchmark's batch core must give the service's bytes exactly, fast path or not."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from services.bench.core import make_variants, measure_core, service_codec
from services.bench.dataset import build_dataset
from services.bench.fastcore import BatchCore, LazyPayload
from services.common.avro_codec import AvroCodec, event_from_avro, event_to_avro
from services.common.envelope import Event
from services.lifecycle.batch import lifecycle_record
from services.lifecycle.domain import run_log

IN, OUT = AvroCodec("event_envelope"), AvroCodec("lifecycle_record")


def reference(messages: list[bytes]) -> list[bytes]:
    """The lifecycle records by the general codec path and the domain's own run_log."""
    envelopes = [IN.decode(m) for m in messages]
    transitions = run_log(event_from_avro(e) for e in envelopes)
    return [OUT.encode(lifecycle_record(t, e)) for t, e in zip(transitions, envelopes) if t.version is not None]


def encode(events: list[Event]) -> list[bytes]:
    return [IN.encode(event_to_avro(e)) for e in events]


def test_fast_path_is_on_for_the_current_schemas():
    assert BatchCore().fast


def test_same_bytes_as_the_codec_on_generated_traffic():
    ds = build_dataset(3000, seed=5, start=datetime(2026, 11, 2, 8, tzinfo=timezone.utc))
    messages = [m for _k, m in ds.messages]
    core = BatchCore()
    assert core.run(messages) == reference(messages)
    assert core.slow_path == 0


def test_every_variant_agrees_and_the_core_measure_reports_them():
    ds = build_dataset(800, seed=9, start=datetime(2026, 11, 2, 8, tzinfo=timezone.utc))
    messages = [m for _k, m in ds.messages]
    outs = {name: fn(messages) for name, fn in make_variants(IN, OUT).items()}
    assert outs["service"] == outs["codec"] == outs["batch"] == reference(messages)
    doc = measure_core(messages, repeats=1, with_profile=True)
    assert doc["identical_output"] == {"service": True, "codec": True, "batch": True}
    assert doc["service_path"] in ("wire", "codec")
    assert doc["service_path"] == service_codec(IN, OUT)[0]
    for variant in doc["variants"].values():
        assert variant["events_per_cpu_s"] > 0
    assert doc["profile_service"] and doc["profile_batch"]
    assert set(doc["stage_us_per_event"]) >= {"decode_avro", "apply_event_with_dedup", "encode_lifecycle_record"}
    assert set(doc["batch_ablation_us_per_event"]) >= {"all on", "eager_payload", "no_domain"}


T0 = datetime(2026, 11, 2, 8, 0, 0, 250_000, tzinfo=timezone.utc)


def test_duplicates_and_the_slow_path_cases_give_the_same_bytes():
    long_id = "L" * 70                     # a two-byte string length
    events = [
        Event("e1", "lead-1", "lead.created", T0, "website", {"channel": "website", "segment": "smb"}),
        Event("e1", "lead-1", "lead.scored", T0, "hubspot", {"score": 5, "fit": "poor"}),   # duplicate id
        Event("e2", long_id, "lead.created", T0, "website", {}),
        Event("e3", "lead-1", "lead.scored", datetime(1969, 7, 20, 20, 17, tzinfo=timezone.utc), "hubspot",
              {"score": 50, "fit": "good"}),                                          # before 1970
        Event("e4", "lead-1", "lead.activity", T0, "hubspot", {"kind": "download", "blob": "x" * 9000}),  # 3-byte length
        Event("e5", "lead-ü", "lead.assigned", T0 + timedelta(days=1), "crm", {"owner": "Zoë", "team": "ñ"}),
        Event("e6", "lead-2", "deal.won", datetime(2300, 1, 1, tzinfo=timezone.utc), "crm", {"revenue": 1}),  # past 2242
    ]
    messages = encode(events)
    core = BatchCore()
    assert core.run(messages) == reference(messages)
    assert core.slow_path == 4    # the long id, the 1969 time, the 9000-byte payload, the year 2300


def test_state_carries_over_between_batches():
    ds = build_dataset(2000, seed=2, start=datetime(2026, 11, 2, 8, tzinfo=timezone.utc))
    messages = [m for _k, m in ds.messages]
    core = BatchCore()
    out = core.run(messages[:700]) + core.run(messages[700:])
    assert out == reference(messages)


def test_other_messages_go_through_the_codec_which_explains():
    core = BatchCore()
    with pytest.raises(Exception):
        core.run([b"not avro at all"])


def test_fromtimestamp_route_is_exact_for_microsecond_times():
    from services.bench.fastcore import UTC, _FLOAT_EXACT_US

    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    rng = random.Random(1)
    year_2242 = (datetime(2242, 1, 1, tzinfo=timezone.utc) - epoch) // timedelta(microseconds=1)
    assert year_2242 < _FLOAT_EXACT_US
    samples = [rng.randrange(0, year_2242) for _ in range(20000)] + [0, 1, 999_999, year_2242 - 1]
    samples += [s - s % 1_000_000 + 999_999 for s in samples[:2000]]   # the last microsecond of a second
    for us in samples:
        assert datetime.fromtimestamp(us / 1e6, UTC) == epoch + timedelta(microseconds=us), us


def test_lazy_payload_is_a_mapping_read_on_demand():
    p = LazyPayload('{"fit":"good","n":[1,2]}')
    assert p._value is None
    assert p.get("fit") == "good"
    assert p["n"] == [1, 2]
    assert dict(p) == {"fit": "good", "n": [1, 2]}
    assert len(p) == 2 and "fit" in p and p.get("missing") is None
    assert p == {"fit": "good", "n": [1, 2]}
    with pytest.raises(KeyError):
        p["missing"]


def test_ablations_other_than_the_domain_keep_the_bytes():
    ds = build_dataset(1500, seed=4, start=datetime(2026, 11, 2, 8, tzinfo=timezone.utc))
    messages = [m for _k, m in ds.messages]
    expected = reference(messages)
    for name in ("eager_payload", "timedelta_time", "varint_loop"):
        assert BatchCore(IN, OUT, ablate=(name,)).run(messages) == expected, name
    assert len(BatchCore(IN, OUT, ablate=("no_domain",)).run(messages)) == len(messages)
    with pytest.raises(ValueError):
        BatchCore(IN, OUT, ablate=("turbo",))
