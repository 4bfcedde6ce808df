"""The records the bench's Kafka parts read are the lifecycle service's own output."""
from __future__ import annotations

from types import SimpleNamespace

from services.bench.dataset import build_dataset, lifecycle_records, lifecycle_step
from services.common.avro_codec import AvroCodec
from services.lifecycle.batch import PartitionInput, decode_partition, plan_round
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder


def test_lifecycle_records_equal_one_round_of_the_service():
    dataset = build_dataset(400, seed=3)
    in_codec = AvroCodec("event_envelope")
    records = [SimpleNamespace(offset=i, key=k, value=v) for i, (k, v) in enumerate(dataset.messages)]
    decoded = decode_partition(EnvelopeDecoder(in_codec), records)
    plan = plan_round("events", [PartitionInput(0, 0, decoded)], {e.lead_id: None for e in dataset.events}, set(),
                      LifecycleEncoder(AvroCodec("lifecycle_record"), in_codec))
    assert lifecycle_records(dataset) == plan.parts[0].outputs
    assert len(plan.parts[0].outputs) == len(dataset.messages)   # the generator sends no duplicates


def test_a_repeated_event_gets_no_record_and_an_unreadable_one_is_an_error():
    dataset = build_dataset(5, seed=3)
    step = lifecycle_step()
    first = step(0, dataset.messages[0][1])
    assert first is not None
    assert step(1, dataset.messages[0][1]) is None   # same event id again: a duplicate
    try:
        step(2, b"not avro")
    except ValueError as exc:
        assert "offset 2 is unreadable" in str(exc)
    else:
        raise AssertionError("an unreadable bench record was accepted")
