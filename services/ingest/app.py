"""The ingest service: `POST /v1/events` over HTTP and the `leadflow.inbound` consumer, in one
aiohttp application (`create_app`). Nothing here does I/O until the application starts.

Routes (documented by services/ingest/openapi.py, served at /openapi.json):
- `POST /v1/events`: one event, a JSON array or NDJSON (services/ingest/request_body.py reads and
  validates it). 202 only after Kafka acknowledged every accepted event; 422 when no event is
  valid; 400 / 413 / 415 for the body as a whole; 401 for missing or bad credentials; 503 with
  Retry-After when Kafka cannot take the events (down, no acknowledgement within ack_timeout_s,
  or max_inflight_bytes of bodies already waiting for it: memory stays bounded when Kafka is slow).
- `GET /healthz` (the process answers), `GET /readyz` (a fresh metadata request to Kafka succeeds
  and lists the events topic): open to anyone. `GET /metrics`, `GET /openapi.json`: with an API
  key, as `POST /v1/events`, unless no key is configured (dev mode).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.common.avro_codec import AvroCodec
from services.common.config import Settings, env_flag, env_number
from services.common.envelope import InvalidEvent, parse_event
from services.common.kafka import ensure_topics
from services.common.metrics import metrics_handler
from services.ingest.auth import ApiKeys, Authenticator
from services.ingest.inbound import InboundConsumer, InboundOptions
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import HttpPublisher, KafkaUnavailable
from services.ingest.records import OutRecord, event_record
from services.ingest.request_body import MAX_REQUEST_BYTES, BodyRejected, Refusal, read_events

log = logging.getLogger("leadflow.ingest")

SERVICE_KEY: web.AppKey["IngestService"] = web.AppKey("leadflow_ingest_service")
ERROR_CODES = {400: "bad_request", 401: "unauthorized", 413: "payload_too_large", 415: "unsupported_media_type",
               500: "internal_error", 503: "unavailable"}


@dataclass(frozen=True)
class IngestOptions:
    """Tuning of the service (environment LEADFLOW_INGEST_*, read once at start-up)."""

    ack_timeout_s: float = 10.0          # a request's wait for Kafka's acknowledgements, then 503
    retry_after_s: int = 5               # the Retry-After of a 503
    producer_request_timeout_ms: int = 15_000
    kafka_retry_s: float = 2.0           # between attempts to (re)connect to Kafka
    readiness_timeout_s: float = 3.0
    # Bytes of request bodies waiting for Kafka's acknowledgements at once; past it a request is
    # answered 503 at once. Bounds memory when Kafka is slow and requests pile up.
    max_inflight_bytes: int = 64 << 20
    consume_inbound: bool = True         # run the leadflow.inbound consumer in this process
    create_topics: bool = True           # create inbound/events/dlq when missing (as `leadflow topics` does)
    inbound: InboundOptions = field(default_factory=InboundOptions)


def load_options(env: Mapping[str, str] | None = None) -> IngestOptions:
    env = os.environ if env is None else env
    d = IngestOptions()

    def num(name: str, default, cast=float):
        return env_number(env, f"LEADFLOW_INGEST_{name}", default, cast)

    def flag(name: str, default: bool) -> bool:
        return env_flag(env, f"LEADFLOW_INGEST_{name}", default)

    return IngestOptions(
        ack_timeout_s=num("ACK_TIMEOUT_S", d.ack_timeout_s),
        retry_after_s=num("RETRY_AFTER_S", d.retry_after_s, int),
        producer_request_timeout_ms=num("PRODUCER_REQUEST_TIMEOUT_MS", d.producer_request_timeout_ms, int),
        kafka_retry_s=num("KAFKA_RETRY_S", d.kafka_retry_s),
        max_inflight_bytes=num("MAX_INFLIGHT_BYTES", d.max_inflight_bytes, int),
        consume_inbound=flag("CONSUME_INBOUND", d.consume_inbound),
        create_topics=flag("CREATE_TOPICS", d.create_topics),
        inbound=InboundOptions(
            group_id=env.get("LEADFLOW_INGEST_GROUP_ID") or None,
            max_records=num("INBOUND_MAX_RECORDS", d.inbound.max_records, int),
        ),
    )


def request_error(status: int, reason: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """The documented `RequestError` body: {"error": <code>, "reason": <text>}."""
    return web.json_response({"error": ERROR_CODES.get(status, "error"), "reason": reason}, status=status,
                             headers=headers)


def result_body(accepted: int, refusals: list[Refusal]) -> dict:
    """The documented `IngestResult` body."""
    refusals = sorted(refusals, key=lambda r: r.index)
    return {"accepted": accepted, "refused": len(refusals), "errors": [r.to_json() for r in refusals]}


class IngestService:
    def __init__(self, settings: Settings, options: IngestOptions | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.options = options or IngestOptions()
        self.registry = registry if registry is not None else CollectorRegistry()
        self.auth = Authenticator(ApiKeys.parse(settings.ingest_api_keys.reveal()), settings.ingest_hmac_secret.reveal())
        self.metrics = IngestMetrics(self.registry, sources=self.auth.keys.sources)
        self.codec = AvroCodec("event_envelope")
        self.events_topic = settings.topics.events
        self.publisher = HttpPublisher(
            settings, ack_timeout_s=self.options.ack_timeout_s, retry_s=self.options.kafka_retry_s,
            request_timeout_ms=self.options.producer_request_timeout_ms, on_error=self.metrics.error,
        )
        self.inbound: InboundConsumer | None = None
        self._inbound_task: asyncio.Task | None = None
        self._closing = False
        self._openapi: dict | None = None
        self._inflight_bytes = 0             # bodies whose records wait for Kafka (max_inflight_bytes)

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.auth.open:
            log.warning("no API keys configured (LEADFLOW_INGEST_API_KEYS): POST /v1/events accepts events "
                        "from anyone - dev mode, never run it like this where others can reach it")
        if self.settings.ingest_hmac_secret:
            log.info("request signatures required (LEADFLOW_INGEST_HMAC_SECRET is set)")
        self.publisher.start()
        if self.options.consume_inbound:
            self._inbound_task = asyncio.create_task(self._run_inbound(), name="ingest-inbound")

    async def _run_inbound(self) -> None:
        """Keep the inbound consumer running: (re)join the group whenever Kafka is reachable."""
        o = self.options
        topics = [self.settings.topics.inbound, self.settings.topics.events, self.settings.topics.dlq]
        while not self._closing:
            consumer = None
            try:
                if o.create_topics:
                    await asyncio.wait_for(ensure_topics(self.settings, topics), o.producer_request_timeout_ms / 1000)
                consumer = InboundConsumer(self.settings, self.metrics, o.inbound)
                self.inbound = consumer
                await consumer.start()
                await consumer.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka unreachable, or a bug: log, back off, retry
                log.warning("inbound consumer not running (%r); retrying in %.1fs", exc, o.kafka_retry_s)
                self.metrics.error("kafka")
            finally:
                if consumer is not None:
                    await asyncio.shield(consumer.close())
            if not self._closing:
                await asyncio.sleep(o.kafka_retry_s)

    async def close(self) -> None:
        self._closing = True
        if self.inbound is not None:
            self.inbound.request_stop()
        if self._inbound_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._inbound_task), 45)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                log.warning("the inbound consumer did not stop cleanly; cancelling it", exc_info=True)
                self._inbound_task.cancel()
                try:
                    await self._inbound_task
                except asyncio.CancelledError:
                    pass  # what cancel() asked for
                except Exception:  # noqa: BLE001 - shutting down: report, then go on closing
                    log.warning("the inbound consumer failed while cancelled", exc_info=True)
        await self.publisher.close()

    # --- handlers -------------------------------------------------------------------------------

    async def post_events(self, request: web.Request) -> web.Response:
        allowed, key_source = self.auth.key_source(request.headers)
        if not allowed:
            return self._unauthorized()
        try:
            body = await _read_capped(request, MAX_REQUEST_BYTES)
        except BodyRejected as exc:
            return request_error(exc.status, exc.reason)
        if not self.auth.body_allowed(request.headers, body, time.time()):
            return self._unauthorized()
        now = datetime.now(timezone.utc)
        try:
            items = read_events(body, request.headers.get("Content-Type"))
        except BodyRejected as exc:
            if exc.status == 400:
                self.metrics.count_refused(None, "http", "json")
            return request_error(exc.status, exc.reason)
        except RecursionError:
            self.metrics.count_refused(None, "http", "json")
            return request_error(400, "the body is not valid JSON: nested too deeply")

        refusals: list[Refusal] = []
        records: list[OutRecord] = []
        sources: list[str] = []
        for index, item in enumerate(items):
            try:
                if isinstance(item, InvalidEvent):
                    raise item
                event = parse_event(item, now=now)
                if key_source is not None and event.source != key_source:
                    raise InvalidEvent("source", f"must be {key_source!r}, the source of the API key")
                records.append(event_record(self.codec, self.events_topic, event, "http"))
                sources.append(event.source)
            except InvalidEvent as exc:
                refusals.append(Refusal(index, exc.field, exc.reason))
                self.metrics.count_refused(item.get("source") if isinstance(item, dict) else None, "http", exc.field)
        if not records:
            return web.json_response(result_body(0, refusals), status=422)
        if self._inflight_bytes + len(body) > self.options.max_inflight_bytes:
            self.metrics.error("publish")
            return self._unavailable("too many requests are waiting for the event log")
        self._inflight_bytes += len(body)
        try:
            await self.publisher.publish(records)
        except KafkaUnavailable as exc:
            return self._unavailable(str(exc))
        finally:
            self._inflight_bytes -= len(body)
        for source in sources:
            self.metrics.count_accepted(source, "http")
        return web.json_response(result_body(len(records), refusals), status=202)

    def _unavailable(self, why: str) -> web.Response:
        return request_error(503, f"the event log cannot be written now ({why}); nothing was accepted, "
                                  "send the request again later",
                             headers={"Retry-After": str(self.options.retry_after_s)})

    def _keyed(self, handler):
        """`handler` behind the API keys: 401 without a valid one (unless in dev mode)."""
        async def handle(request: web.Request) -> web.StreamResponse:
            allowed, _source = self.auth.key_source(request.headers)
            if not allowed:
                return self._unauthorized()
            return await handler(request)

        return handle

    def _unauthorized(self) -> web.Response:
        return request_error(401, "missing or invalid credentials", headers={"WWW-Authenticate": 'Bearer realm="leadflow"'})

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        ok, detail = await self.publisher.kafka_ready(self.events_topic, self.options.readiness_timeout_s)
        checks = {"kafka": "ok" if ok else f"unavailable: {detail}"}
        if self.options.consume_inbound:
            checks["inbound_consumer"] = "running" if self.inbound is not None and self.inbound.running else "starting"
        return web.json_response({"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503)

    async def openapi(self, _request: web.Request) -> web.Response:
        if self._openapi is None:
            from services.ingest.openapi import build_openapi

            self._openapi = build_openapi()
        return web.json_response(self._openapi)

    # --- the application ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._observe])
        app[SERVICE_KEY] = self
        app.router.add_post("/v1/events", self.post_events)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        # Outside dev mode only the health checks answer without a key (any configured key:
        # give the scraper an entry of its own, e.g. `scraper:<hash>`, which can post nothing else).
        app.router.add_get("/metrics", self._keyed(metrics_handler(self.registry)))
        app.router.add_get("/openapi.json", self._keyed(self.openapi))

        async def on_startup(_app: web.Application) -> None:
            await self.start()

        async def on_cleanup(_app: web.Application) -> None:
            await self.close()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    @web.middleware
    async def _observe(self, request: web.Request, handler) -> web.StreamResponse:
        """Request latency by route template and status; any unexpected error becomes a logged
        500 with the documented error body (never a traceback to the client)."""
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:  # noqa: BLE001
            log.exception("unhandled error in %s %s", request.method, route)
            self.metrics.error("internal")
            response = request_error(500, "internal error")
        finally:
            self.metrics.request_duration.labels(route, str(status)).observe(time.perf_counter() - started)
        return response


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it passes `limit` bytes."""
    too_big = BodyRejected(413, f"the body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings, options: IngestOptions | None = None,
               registry: CollectorRegistry | None = None) -> web.Application:
    """The ingest application; Kafka connections start with the application (on_startup)."""
    return IngestService(settings, options, registry).make_app()
