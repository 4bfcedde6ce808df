"""Store a history of events the way the services do: the lifecycle's round planner and event
store write (services/lifecycle/batch.py, store.py) on partition 0, then the lifecycle records it
would publish read by the SLA monitor's decoder into the SLA engine, its changes written by the
SLA store (services/sla_monitor/store.py). Clock time follows the largest occurred_at seen, as in
`leadflow replay`, and ends at `now`."""
from __future__ import annotations

from datetime import datetime

from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.envelope import Event
from services.common.postgres import connect
from services.common.timefmt import format_utc, parse_rfc3339
from services.lifecycle import store as lifecycle_store
from services.lifecycle.batch import PartitionInput, decode_record, plan_round
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder
from services.sla_monitor import store as sla_store
from services.sla_monitor.domain import Policy, SlaEngine
from services.sla_monitor.records import clock_id, transition_from_avro, window_id

GROUP = "report-test"
TOPIC = "report-test.events"


def ev(event_id: str, lead_id: str, etype: str, at: str, payload: dict | None = None, source: str = "hubspot") -> Event:
    return Event(event_id, lead_id, etype, parse_rfc3339(at), source, payload or {})


async def store_history(settings, events: list[Event], policy: Policy, now: datetime) -> None:
    conn = await connect(settings)
    try:
        await lifecycle_store.migrate_store(conn)
        await sla_store.migrate_store(conn)
        codec = AvroCodec("event_envelope")
        decoder = EnvelopeDecoder(codec)
        records = [decode_record(decoder, offset, e.lead_id.encode(), codec.encode(event_to_avro(e)))
                   for offset, e in enumerate(events)]
        await lifecycle_store.claim_partition(conn, GROUP, TOPIC, 0)
        plan = plan_round(TOPIC, [PartitionInput(0, 0, records)], {e.lead_id: None for e in events}, set(),
                          LifecycleEncoder(AvroCodec("lifecycle_record"), codec))
        await lifecycle_store.write_round(conn, GROUP, plan, {0: None})

        lifecycle_codec = AvroCodec("lifecycle_record")
        engine = SlaEngine(policy, keep_history=False)
        clock_time = None
        for _key, value in plan.parts[0].outputs:
            transition = transition_from_avro(lifecycle_codec.decode(value))
            at = transition.event.occurred_at
            clock_time = at if clock_time is None or at > clock_time else clock_time
            engine.advance(clock_time)
            engine.observe(transition)
        engine.advance(now)
        changes = engine.take_changes()
        epoch = await sla_store.claim(conn, "report-test")
        commit = sla_store.Commit(clocks=changes.clocks, windows=changes.windows, state=changes.state,
                                  policy_version=policy.version)
        clock_ids = [clock_id((c["sla"], c["lead_id"], c["start_event_id"])) for c in changes.clocks]
        window_ids = [window_id((w["sla"], w["owner"] or "", format_utc(parse_rfc3339(w["window_start"]))))
                      for w in changes.windows]
        await sla_store.write(conn, epoch, "report-test.lifecycle", commit, clock_ids, window_ids)
    finally:
        await conn.close()
