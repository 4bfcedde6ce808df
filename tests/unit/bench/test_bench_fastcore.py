"""The benchmark's batch core must give the service's bytes exactly, fast path or not."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.bench.core import make_variants, measure_core, service_codec
from services.bench.dataset import build_dataset
from services.bench.fastcore import BatchCore
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
    assert set(doc["stage_us_per_event"]) >= {"decode_partition", "apply_event_with_dedup", "encode_lifecycle_record"}
    assert set(doc["batch_ablation_us_per_event"]) >= {"all on", "no_domain"}


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
    # the long id, the 1969 time, the 9000-byte payload, the year 2300: the wire reader's general cases
    assert core.slow_path == 0
    nul = encode([Event("e7", "lead-\x00", "lead.created", T0, "crm", {})])
    assert BatchCore().run(nul) == reference(nul)


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


def test_the_domain_ablation_keeps_one_record_per_event():
    ds = build_dataset(1500, seed=4, start=datetime(2026, 11, 2, 8, tzinfo=timezone.utc))
    messages = [m for _k, m in ds.messages]
    assert BatchCore(IN, OUT).run(messages) == reference(messages)
    assert len(BatchCore(IN, OUT, ablate=("no_domain",)).run(messages)) == len(messages)
    with pytest.raises(ValueError):
        BatchCore(IN, OUT, ablate=("turbo",))
