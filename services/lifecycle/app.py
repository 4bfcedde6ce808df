"""Wiring of the lifecycle service: settings in, signals handled, the service run until SIGTERM.

Nothing here runs at import. `python -m services.lifecycle` and `leadflow lifecycle` call main().
SIGTERM/SIGINT: the round in hand is finished (stored and published), the producers are closed and
the consumer leaves its group. SIGKILL needs nothing: see docs/lifecycle.md.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

import asyncpg
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from services.common.config import ConfigError, Settings, load_settings
from services.common.runtime import tune_gc
from services.lifecycle.service import LifecycleOptions, LifecycleService, load_options

log = logging.getLogger("leadflow.lifecycle")


async def run_service(settings: Settings, options: LifecycleOptions | None = None,
                      registry: CollectorRegistry | None = None, *, handle_signals: bool = True) -> None:
    service = LifecycleService(settings, options, registry)
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.request_stop)
    try:
        await service.start()
        await service.run()
    finally:
        await service.close()
        log.info("lifecycle service stopped: %d events stored in %d rounds (%d Kafka transactions); "
                 "seconds per step: %s", service.events_stored, service.rounds, service.transactions,
                 ", ".join(f"{k} {v:.2f}" for k, v in sorted(service.phases.items())))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    tune_gc()
    try:
        settings = load_settings()
        options = load_options()
    except (ConfigError, ValueError) as exc:
        print(f"leadflow lifecycle: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_service(settings, options))
    except (OSError, asyncio.TimeoutError, KafkaConnectionError, asyncpg.PostgresError) as exc:
        # Nothing reachable at start-up: say which, without a traceback.
        print(f"leadflow lifecycle: cannot start: {type(exc).__name__}: {exc} "
              f"(Kafka {settings.kafka_bootstrap}, PostgreSQL schema {settings.postgres_schema}; is the stack up?)",
              file=sys.stderr)
        return 1
    return 0
