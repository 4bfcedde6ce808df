"""An unreadable record on leadflow.events is set aside in the round's unreadable rows with its
reason, and counted as leadflow_errors_total{service="lifecycle",kind="decode"} once stored."""
from __future__ import annotations

from collections import namedtuple
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry

from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.envelope import Event
from services.lifecycle.batch import PartitionInput, decode_partition, plan_round
from services.lifecycle.metrics import LifecycleMetrics
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder

IN = AvroCodec("event_envelope")
Record = namedtuple("Record", "offset key value")
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def test_unreadable_records_set_aside_and_counted():
    good = IN.encode(event_to_avro(Event("e1", "L1", "lead.created", T0, "website", {"channel": "website"})))
    records = [
        Record(0, b"x", b'{"email": "someone@example.com"}'),      # not Avro
        Record(1, b"L1", good),
        Record(2, b"L1", good[:2] + bytes(8) + good[10:]),         # unknown writer schema
        Record(3, b"L1", good[: len(good) // 2]),                  # truncated
        Record(4, b"L1", None),                                    # tombstone
    ]
    decoded = decode_partition(EnvelopeDecoder(IN), records)
    plan = plan_round("t.events", [PartitionInput(0, 0, decoded)], {"L1": None}, set(),
                      LifecycleEncoder(AvroCodec("lifecycle_record"), IN))
    assert [row[2] for row in plan.unreadable_rows] == [0, 2, 3, 4]
    assert all(row[5] for row in plan.unreadable_rows)               # each with its reason
    assert [row[2] for row in plan.event_rows] == ["e1"]
    assert plan.parts[0].next_offset == 5                            # and the partition goes on

    registry = CollectorRegistry()
    metrics = LifecycleMetrics(registry)
    metrics.count_round(plan)
    assert registry.get_sample_value("leadflow_errors_total", {"service": "lifecycle", "kind": "decode"}) == 4
