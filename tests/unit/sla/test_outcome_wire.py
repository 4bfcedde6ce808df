"""ClockOutcomeEncoder (services/sla_monitor/wire.py) writes exactly the bytes the codec writes for
a clock emission's leadflow.sla record, and declines what it does not take."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.bench.traffic import generate_events
from services.common.avro_codec import AvroCodec
from services.common.envelope import parse_event
from services.lifecycle.domain import LeadLog
from services.sla_monitor.domain import SlaEngine, load_policy
from services.sla_monitor.records import clock_id, outcome_record
from services.sla_monitor.wire import ClockOutcomeEncoder


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec("sla_outcome")


def emissions_of_traffic(n: int):
    engine = SlaEngine(load_policy(None), keep_history=False)
    log = LeadLog()
    out = []
    last = None
    for raw in generate_events(n, seed=5):
        event = parse_event(raw)
        t = log.apply(event)
        out += engine.observe(t)
        last = event.occurred_at
        if len(out) % 50 == 0:
            out += engine.advance(last)
    out += engine.advance(last + timedelta(days=60))
    return out


def test_same_bytes_as_the_codec_for_bench_traffic(codec):
    encoder = ClockOutcomeEncoder(codec)
    assert encoder.fast
    emitted_at = datetime(2026, 11, 27, 22, 1, 2, 345678, tzinfo=timezone.utc)
    kinds = set()
    n = 0
    for e in emissions_of_traffic(15000):
        if e.clock is None:
            continue
        fast = encoder.encode(e.clock, e.kind, e.policy_version, clock_id(e.clock.key), emitted_at, e.late)
        assert fast == codec.encode(outcome_record(e, emitted_at))
        kinds.add(e.kind)
        n += 1
    assert n > 500 and {"started", "met", "breached", "cancelled"} <= kinds, (n, kinds)


def test_odd_values(codec):
    encoder = ClockOutcomeEncoder(codec)
    e = next(e for e in emissions_of_traffic(3000) if e.clock is not None)
    berlin = ZoneInfo("Europe/Berlin")
    variants = [
        replace(e.clock, lead_id="lead-ü-😀" * 20, team="émea", corrected=True),
        replace(e.clock, due_at=None, stopped_at=datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc)),
        replace(e.clock, started_at=datetime(2026, 3, 29, 2, 30, tzinfo=berlin), required=3, attempts=0),
        replace(e.clock, required=2**31 - 1, attempts=-(2**31), team=None),
        replace(e.clock, sla="x" * 300, outcome="met"),
    ]
    at = datetime(2300, 1, 1, tzinfo=timezone.utc)
    for clock, late in zip(variants, (True, False, True, False, True)):
        e2 = replace(e, clock=clock, policy_version="v-" + "9" * 80, late=late)
        assert encoder.encode(clock, e2.kind, e2.policy_version, clock_id(clock.key), at, late) == \
            codec.encode(outcome_record(e2, at))


def test_declines(codec):
    encoder = ClockOutcomeEncoder(codec)
    e = next(e for e in emissions_of_traffic(3000) if e.clock is not None)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    cid = clock_id(e.clock.key)
    assert encoder.encode(e.clock, "nonsense", e.policy_version, cid, at) is None
    assert encoder.encode(e.clock, e.kind, e.policy_version, cid, datetime(2026, 1, 1)) is None
    assert encoder.encode(replace(e.clock, required=2**31, attempts=0), e.kind, e.policy_version, cid, at) is None
    assert encoder.encode(replace(e.clock, lead_id="\ud800"), e.kind, e.policy_version, cid, at) is None
