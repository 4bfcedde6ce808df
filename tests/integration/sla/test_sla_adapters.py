"""The SLA monitor's pure adapters, no stack: lifecycle records in, leadflow.sla records out,
clock ids, and the metrics' label bounding and gauges."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry

from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.envelope import Event
from services.lifecycle.batch import lifecycle_record
from services.lifecycle.domain import run_log
from services.sla_monitor.domain import SlaEngine, default_policy
from services.sla_monitor.metrics import SlaMetrics, WindowView
from services.sla_monitor.records import clock_id, emission_key, outcome_record, transition_from_avro, window_id

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)  # Monday, 10:00 in Berlin


def ev(event_id: str, lead: str, etype: str, minutes: float, payload=None, source="hubspot") -> Event:
    return Event(event_id, lead, etype, T0 + timedelta(minutes=minutes), source, payload or {})


def log() -> list[Event]:
    return [
        ev("c", "L/1", "lead.created", 0, {"channel": "website", "segment": "enterprise", "x": [1, {"y": None}]}),
        ev("m", "L/1", "lead.marketing_qualified", 1, {"fit": "good"}),
        ev("a", "L/1", "lead.assigned", 2, {"owner": "rep-1", "team": "sales-emea"}, "salesforce"),
        ev("t1", "L/1", "contact.attempted", 3, {"channel": "phone"}, "dialer"),
        ev("r", "L/1", "lead.recycled", 4, {"reason": "no_response"}),
    ]


def test_lifecycle_record_round_trip_gives_the_domain_transition():
    codec = AvroCodec("lifecycle_record")
    for t in run_log(log()):
        decoded = transition_from_avro(codec.decode(codec.encode(lifecycle_record(t, event_to_avro(t.event)))))
        assert decoded == t


def test_every_emission_encodes_as_an_sla_outcome_record():
    codec = AvroCodec("sla_outcome")
    engine = SlaEngine(default_policy(), keep_history=False)
    emissions = []
    for t in run_log(log()):
        emissions += engine.advance(t.event.occurred_at) + engine.observe(t)
    emissions += engine.advance(T0 + timedelta(days=40))
    kinds = sorted({(e.sla, e.kind) for e in emissions})
    assert ("speed_to_lead", "started") in kinds and ("speed_to_lead", "met") in kinds
    assert ("contact_attempts", "breached") in kinds and ("sales_acceptance", "cancelled") in kinds
    now = T0 + timedelta(days=40)
    for emission in emissions:
        record = outcome_record(emission, now)
        back = codec.decode(codec.encode(record))
        assert back["kind"] == emission.kind and back["emitted_at"] == now
        if emission.clock is not None:
            assert emission_key(emission) == b"L/1"
            assert back["clock_id"] == clock_id(emission.clock.key)
            assert back["team"] == emission.clock.team
            if emission.sla == "contact_attempts":
                assert back["required"] == 8  # enterprise
                assert back["attempts"] == (1 if emission.kind == "breached" else 0)
        else:
            assert emission_key(emission) == b"marketing_weekly_volume"
            assert back["scope"] == {} and back["count"] == 0 and back["fit_share"] is None
            assert back["outcome"] == "breached" and back["window_end"] <= now
    assert sum(1 for e in emissions if e.kind == "window_closed") == 4  # weeks of Nov 9, 16, 23, 30
    attempts = next(e for e in emissions if e.sla == "contact_attempts" and e.kind == "breached")
    assert outcome_record(attempts, now)["due_at"] is None


def test_ids_escape_their_parts():
    assert clock_id(("speed_to_lead", "L/1", "e 1")) == "speed_to_lead/L%2F1/e%201"
    assert window_id(("rep_monthly_volume", "ana/b", "2026-11-01T00:00:00Z")) == \
        "rep_monthly_volume/@ana%2Fb/2026-11-01T00:00:00Z"
    assert clock_id(("a", "b/c", "d")) != clock_id(("a/b", "c", "d"))


def test_team_and_owner_labels_are_bounded():
    metrics = SlaMetrics(CollectorRegistry(), default_policy())
    assert metrics.team("Sales-EMEA") == "sales-emea"
    assert metrics.team("ana@example.com") == "other"
    assert metrics.team("two words") == "other"
    for i in range(100):
        metrics.team(f"team-{i}")
    assert metrics.team("team-99") == "other"  # past the first 64
    assert metrics.team("sales") == "sales"  # the owning sides always
    assert metrics.owner("rep-7") == "rep-7"
    assert metrics.owner("rep@example.com") == "other"


def test_open_and_at_risk_gauges():
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry, default_policy())
    engine = SlaEngine(default_policy(), keep_history=False)
    for t in run_log(log()[:3]):
        engine.observe(t)
    # speed_to_lead started at T0+1min, due an hour of business time later; at 46 minutes it
    # is past 75 %.
    metrics.set_clock_gauges(engine.live_clocks(), T0 + timedelta(minutes=30))
    get = registry.get_sample_value
    assert get("leadflow_sla_clocks_open", {"sla": "speed_to_lead", "team": "sales"}) == 1
    assert get("leadflow_sla_clocks_at_risk", {"sla": "speed_to_lead", "team": "sales"}) == 0
    assert get("leadflow_sla_clocks_open", {"sla": "sales_acceptance", "team": "sales-emea"}) == 1
    metrics.set_clock_gauges(engine.live_clocks(), T0 + timedelta(minutes=47))
    assert get("leadflow_sla_clocks_at_risk", {"sla": "speed_to_lead", "team": "sales"}) == 1
    assert get("leadflow_sla_clocks_at_risk", {"sla": "contact_attempts", "team": "sales-emea"}) == 0  # no due
    metrics.set_clock_gauges([], T0)
    assert get("leadflow_sla_clocks_open", {"sla": "sales_acceptance", "team": "sales-emea"}) == 0


def test_volume_gauges_show_the_current_window():
    registry = CollectorRegistry()
    metrics = SlaMetrics(registry, default_policy())
    week = WindowView("marketing_weekly_volume", None, T0 - timedelta(hours=9), T0 + timedelta(days=7), 12, 50)
    month = WindowView("rep_monthly_volume", "rep-1", T0 - timedelta(days=1), T0 + timedelta(days=29), 3, 150)
    metrics.set_volume_gauges([week, month], T0)
    get = registry.get_sample_value
    assert get("leadflow_sla_volume_count", {"sla": "marketing_weekly_volume", "scope": "all"}) == 12
    assert get("leadflow_sla_volume_target", {"sla": "rep_monthly_volume", "scope": "rep-1"}) == 150
    metrics.set_volume_gauges([], T0 + timedelta(days=40))
    assert get("leadflow_sla_volume_count", {"sla": "marketing_weekly_volume", "scope": "all"}) == 0
    assert get("leadflow_sla_volume_count", {"sla": "rep_monthly_volume", "scope": "rep-1"}) == 0
