"""Send a simulated month through the real pipeline, in the order the systems deliver it.

Web forms and the CRM post to ingest's POST /v1/events; the dialer writes its contact.* events to
leadflow.inbound with aiokafka. Both end on leadflow.events, where a lead's events must keep their
order (contract §3: log order). HTTP answers 202 only once its events are on leadflow.events, but
a dialer record waits in leadflow.inbound until ingest forwards it; so the month goes day by day,
and within a day in rounds: each lead's next run of same-route events, then, before any lead's
next run, a wait until ingest has forwarded the round's dialer records."""
from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp

from services.common.config import Settings
from services.common.kafka import lead_key, make_producer
from services.common.timefmt import parse_rfc3339
from services.demo.pipeline_metrics import metric_total
from services.simulator import SimulatedMonth, route_of
from services.simulator.businesstime import BERLIN

HTTP_BATCH = 500


class DemoError(Exception):
    """The pipeline refused or lost what the demo sent; the message says what."""


@dataclass
class StreamStats:
    sent_http: int = 0
    sent_kafka: int = 0
    accepted_http: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return self.sent_http + self.sent_kafka


def days_of(month: SimulatedMonth) -> "OrderedDict[str, list[dict[str, Any]]]":
    """The month's events in log order, grouped by the Berlin day they are delivered on (a late
    batch is delivered when its last held event is, which is the log position it has)."""
    days: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    current = ""
    for event in month.events:
        day = _berlin_day(event["occurred_at"])
        if event["event_id"] not in month.late_event_ids:
            current = max(current, day)
        days.setdefault(current or day, []).append(event)
    return days


def _berlin_day(occurred_at: str) -> str:
    return parse_rfc3339(occurred_at).astimezone(BERLIN).strftime("%Y-%m-%d")


def rounds_of(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split a day's events into rounds: round k holds every lead's k-th run of same-route events,
    in log order. Within a round no lead has events on both routes."""
    runs: dict[str, int] = {}
    last_route: dict[str, str] = {}
    rounds: list[list[dict[str, Any]]] = []
    for event in events:
        lead, route = event["lead_id"], route_of(event)
        if lead not in runs:
            runs[lead] = 0
        elif last_route[lead] != route:
            runs[lead] += 1
        last_route[lead] = route
        while len(rounds) <= runs[lead]:
            rounds.append([])
        rounds[runs[lead]].append(event)
    return rounds


class MonthStreamer:
    """`before_late_batch(sent)` runs once, before the late CRM batch is sent: the demo lets the
    pipeline catch up there, so the SLA monitor has declared the breaches the batch corrects, as
    it would have while the CRM sync was down."""

    def __init__(self, settings: Settings, on_day: Callable[[str, int], None] | None = None,
                 before_late_batch: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.on_day = on_day or (lambda day, sent: None)
        self.before_late_batch = before_late_batch
        self.ingest_url = f"http://127.0.0.1:{settings.ingest_port}"
        self.stats = StreamStats()

    async def run(self, month: SimulatedMonth) -> StreamStats:
        started = time.monotonic()
        producer = make_producer(self.settings)
        await producer.start()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
                self.session = session
                self.kafka_base = await self._kafka_accepted()
                for day, events in days_of(month).items():
                    for round_events in rounds_of(events):
                        if self.before_late_batch and any(e["event_id"] in month.late_event_ids for e in round_events):
                            await self.before_late_batch(self.stats.sent)
                            self.before_late_batch = None
                        http = [e for e in round_events if route_of(e) == "http"]
                        kafka = [e for e in round_events if route_of(e) == "kafka"]
                        await self._post(http)
                        if kafka:
                            await self._produce(producer, kafka)
                            await self._until_forwarded()
                    self.on_day(day, self.stats.sent)
        finally:
            await producer.stop()
        self.stats.seconds = time.monotonic() - started
        return self.stats

    async def _post(self, events: list[dict[str, Any]]) -> None:
        for i in range(0, len(events), HTTP_BATCH):
            batch = events[i:i + HTTP_BATCH]
            async with self.session.post(f"{self.ingest_url}/v1/events", json=batch) as resp:
                body = await resp.json()
                if resp.status not in (202, 422):
                    raise DemoError(f"ingest answered {resp.status} to POST /v1/events: {body}")
            self.stats.sent_http += len(batch)
            self.stats.accepted_http += body.get("accepted", 0)
            self.stats.refused.extend(body.get("errors", []) or [])

    async def _produce(self, producer, events: list[dict[str, Any]]) -> None:
        topic = self.settings.topics.inbound
        for event in events:
            await producer.send(topic, json.dumps(event).encode(), key=lead_key(event["lead_id"]))
        await producer.flush()
        self.stats.sent_kafka += len(events)

    async def _kafka_accepted(self) -> float:
        return await metric_total(self.session, f"{self.ingest_url}/metrics", "leadflow_ingest_events_accepted_total", via="kafka") \
            + await metric_total(self.session, f"{self.ingest_url}/metrics", "leadflow_ingest_events_refused_total", via="kafka")

    async def _until_forwarded(self, timeout: float = 60.0) -> None:
        """Wait until ingest has taken every dialer record sent so far off leadflow.inbound."""
        deadline = time.monotonic() + timeout
        while await self._kafka_accepted() < self.kafka_base + self.stats.sent_kafka:
            if time.monotonic() > deadline:
                raise DemoError(f"ingest did not forward the dialer's records from {self.settings.topics.inbound} "
                                f"within {timeout:.0f} s; see its log under {self.settings.home}/services")
            await asyncio.sleep(0.02)


@dataclass(frozen=True)
class PipelineCounts:
    """What the services have done so far, from their /metrics."""

    stored: float      # lifecycle: events stored with a version (each goes to leadflow.lifecycle) ...
    duplicates: float  # ... or refused as a repeat of a stored event_id
    judged: float      # SLA monitor: leadflow.lifecycle records applied


async def pipeline_counts(settings: Settings) -> PipelineCounts:
    lifecycle_url = f"http://127.0.0.1:{settings.lifecycle_metrics_port}/metrics"
    sla_url = f"http://127.0.0.1:{settings.sla_metrics_port}/metrics"
    async with aiohttp.ClientSession() as session:
        return PipelineCounts(
            stored=await metric_total(session, lifecycle_url, "leadflow_lifecycle_events_applied_total"),
            duplicates=await metric_total(session, lifecycle_url, "leadflow_lifecycle_duplicates_total"),
            judged=await metric_total(session, sla_url, "leadflow_consumer_records_total", service="sla_monitor"),
        )


async def wait_for_pipeline(settings: Settings, before: PipelineCounts, sent: int,
                            on_progress: Callable[[int, int, int], None], timeout: float = 180.0) -> PipelineCounts:
    """Until the lifecycle has stored or refused as duplicates everything sent, and the SLA monitor
    has applied every lifecycle record that came of it; then one timer tick more."""
    deadline = time.monotonic() + timeout
    while True:
        now = await pipeline_counts(settings)
        through_lifecycle = int(now.stored + now.duplicates - before.stored - before.duplicates)
        stored, judged = int(now.stored - before.stored), int(now.judged - before.judged)
        on_progress(through_lifecycle, stored, judged)
        if through_lifecycle >= sent and judged >= stored:
            break
        if time.monotonic() > deadline:
            raise DemoError(f"the pipeline did not catch up within {timeout:.0f} s: lifecycle {through_lifecycle}/{sent}, "
                            f"SLA monitor {judged}/{stored}; see the logs under {settings.home}/services")
        await asyncio.sleep(0.25)
    await asyncio.sleep(2.5)  # the SLA monitor's timer (1 s) declares what is overdue by the wall clock
    return now
