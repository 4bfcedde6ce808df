"""Prometheus plumbing shared by the services. Each service defines its own metrics object that
takes a `CollectorRegistry` (so tests and benchmarks use a fresh one); this module serves a
registry over HTTP and tracks consumer lag the same way for every Kafka consumer."""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest


def metrics_handler(registry: CollectorRegistry):
    async def handle(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> web.AppRunner:
    """Serve /metrics (and /healthz) on host:port; returns the runner to `cleanup()` on shutdown."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


class ConsumerLag:
    """`leadflow_consumer_lag{service,topic,partition}`: records between what the service has
    processed and the partition's high watermark as the consumer last fetched it (no extra
    requests to the broker)."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.gauge = Gauge(
            "leadflow_consumer_lag", "Records not yet processed, per partition",
            ["service", "topic", "partition"], registry=registry,
        )

    def update(self, consumer, next_offsets: dict) -> None:
        """`next_offsets`: TopicPartition -> the offset the service will process next."""
        for tp, next_offset in next_offsets.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.gauge.labels(self.service, tp.topic, str(tp.partition)).set(max(0, highwater - next_offset))
