"""Streams a Plan into the pipeline: HTTP POST /v1/events to whichever ingest instance answers,
and raw JSON onto leadflow.inbound with an idempotent producer. An event counts as accepted once
an HTTP 202 said so, or Kafka acknowledged it on inbound; whatever was not, is sent again (the
same event_id: at worst a duplicate, which the pipeline must absorb). Each lead is sent on one
path and its events one after the other, so its accepted order is its log order."""
from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Callable

import aiohttp

from services.common.config import Settings
from services.common.kafka import lead_key, make_producer
from tests.faults.pipeline_plan import HTTP, Plan, Send

HTTP_WORKERS = 4
HTTP_BATCH = 400
INBOUND_BATCH = 2000


class Traffic:
    def __init__(self, settings: Settings, plan: Plan, ingest_ports: Callable[[], list[int]]) -> None:
        self.settings = settings
        self.plan = plan
        self.ingest_ports = ingest_ports
        self.accepted_order: dict[str, list[str]] = defaultdict(list)   # lead -> event ids, first acceptance
        self.accepted: set[str] = set()
        self.sequence: list = []       # accepted events, in the order they were accepted
        self.sent_records = 0          # records sent (re-sends included)
        self.http_retries = 0
        self.inbound_retries = 0
        self.started = 0.0
        self.finished_at: float | None = None

    def _accept(self, sends: list[Send]) -> None:
        for s in sends:
            eid = s.event.event_id
            if eid not in self.accepted:
                self.accepted.add(eid)
                self.accepted_order[s.event.lead_id].append(eid)
                self.sequence.append(s.event)

    async def send_preamble(self) -> None:
        await self._post_until_accepted([Send(0.0, -1, self.plan.preamble, False)], worker=0)

    async def run(self) -> None:
        self.started = time.monotonic()
        http: list[list[Send]] = [[] for _ in range(HTTP_WORKERS)]
        inbound: list[Send] = []
        for s in self.plan.sends:
            if self.plan.leads[s.lead].path == HTTP:
                http[s.lead % HTTP_WORKERS].append(s)
            else:
                inbound.append(s)
        await asyncio.gather(*(self._http_worker(i, q) for i, q in enumerate(http)),
                             self._inbound_worker(inbound), self._invalid_inbound())
        self.finished_at = time.monotonic()

    async def _due(self, queue: list[Send], start: int, limit: int) -> int:
        """Wait until queue[start] is due; return the end of the due run (at most `limit` long)."""
        wait = queue[start].at_s - (time.monotonic() - self.started)
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.monotonic() - self.started
        end = start
        while end < len(queue) and end - start < limit and queue[end].at_s <= now:
            end += 1
        return max(end, start + 1)

    async def _http_worker(self, worker: int, queue: list[Send]) -> None:
        i = 0
        while i < len(queue):
            end = await self._due(queue, i, HTTP_BATCH)
            await self._post_until_accepted(queue[i:end], worker)
            i = end

    async def _post_until_accepted(self, batch: list[Send], worker: int) -> None:
        body = json.dumps([s.event.to_json() for s in batch]).encode()
        attempt = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            while True:
                ports = self.ingest_ports()
                port = ports[(worker + attempt) % len(ports)]
                attempt += 1
                try:
                    async with session.post(f"http://127.0.0.1:{port}/v1/events", data=body,
                                            headers={"Content-Type": "application/json"}) as response:
                        result = await response.json(content_type=None)
                        if response.status == 202 and result.get("accepted") == len(batch):
                            self.sent_records += len(batch)
                            self._accept(batch)
                            return
                        if response.status < 500 and response.status != 429:
                            raise AssertionError(f"ingest refused valid events: {response.status} {result}")
                except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, OSError):
                    pass
                self.http_retries += 1
                self.sent_records += len(batch)
                await asyncio.sleep(min(2.0, 0.1 * attempt))

    async def _inbound_worker(self, queue: list[Send]) -> None:
        topic = self.settings.topics.inbound
        producer = make_producer(self.settings, request_timeout_ms=15000)
        await producer.start()
        try:
            i = 0
            while i < len(queue):
                end = await self._due(queue, i, INBOUND_BATCH)
                batch = queue[i:end]
                attempt = 0
                while True:
                    try:
                        futures = [await producer.send(topic, key=lead_key(s.event.lead_id),
                                                       value=json.dumps(s.event.to_json()).encode()) for s in batch]
                        self.sent_records += len(batch)
                        await asyncio.gather(*futures)
                        self._accept(batch)
                        break
                    except Exception:  # noqa: BLE001 - unknown outcome: send it all again (dedup by event_id)
                        attempt += 1
                        self.inbound_retries += 1
                        await asyncio.sleep(min(2.0, 0.2 * attempt))
                        if attempt % 3 == 0:   # a producer stuck on a dead connection: a fresh one
                            await producer.stop()
                            producer = make_producer(self.settings, request_timeout_ms=15000)
                            await producer.start()
                i = end
        finally:
            await producer.stop()

    async def _invalid_inbound(self) -> None:
        """Invalid events on inbound, spread over the run: each must land on leadflow.dlq once."""
        producer = make_producer(self.settings)
        await producer.start()
        try:
            step = self.plan.duration_s / (len(self.plan.invalid_inbound) + 1)
            for n, value in enumerate(self.plan.invalid_inbound, start=1):
                await asyncio.sleep(max(0.0, n * step - (time.monotonic() - self.started)))
                while True:
                    try:
                        await (await producer.send(self.settings.topics.inbound, key=b"bad", value=value))
                        break
                    except Exception:  # noqa: BLE001 - resent: the DLQ check counts distinct event ids
                        self.inbound_retries += 1
                        await asyncio.sleep(1.0)
        finally:
            await producer.stop()
