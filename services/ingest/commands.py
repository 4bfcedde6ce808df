"""The `leadflow ingest` and `leadflow keys` commands (`leadflow send` is in services/ingest/send.py)."""
from __future__ import annotations

import logging
import sys

import click

from services.common.config import ConfigError, load_settings


def run_service(host: str | None = None, port: int | None = None) -> int:
    """Run the service until SIGINT/SIGTERM; returns the exit status."""
    from aiohttp import web

    from services.ingest.app import create_app, load_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)   # its connection retries are ours to report
    try:
        settings = load_settings()
        app = create_app(settings, load_options())
    except ConfigError as exc:
        print(f"leadflow ingest: {exc}", file=sys.stderr)
        return 2
    host = host or settings.ingest_host
    port = port or settings.ingest_port
    try:
        web.run_app(app, host=host, port=port, access_log=None, shutdown_timeout=10,
                    print=lambda _msg: logging.getLogger("leadflow.ingest").info(
                        "listening on http://%s:%d (Kafka %s, events -> %s)", host, port,
                        settings.kafka_bootstrap, settings.topics.events))
    except OSError as exc:
        print(f"leadflow ingest: cannot listen on {host}:{port}: {exc.strerror or exc} "
              "(set LEADFLOW_INGEST_PORT or use --port)", file=sys.stderr)
        return 1
    return 0


@click.command("ingest")
@click.option("--host", default=None, help="Address to listen on (default LEADFLOW_INGEST_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on (default LEADFLOW_INGEST_PORT or 8080).")
def ingest(host: str | None, port: int | None) -> None:
    """Run the ingest service: POST /v1/events and the leadflow.inbound consumer.

    Configuration comes from the environment: LEADFLOW_KAFKA_BOOTSTRAP, LEADFLOW_TOPIC_PREFIX,
    LEADFLOW_INGEST_API_KEYS (source:sha256,...; none = open dev mode),
    LEADFLOW_INGEST_HMAC_SECRET (require signed bodies), LEADFLOW_INGEST_* tuning.
    """
    sys.exit(run_service(host, port))


@click.group("keys")
def keys() -> None:
    """Make API keys for ingest and the hashes its configuration holds."""


def _read_key(key: str) -> str:
    if key == "-":
        key = sys.stdin.readline().rstrip("\r\n")
    if not key:
        raise click.UsageError("the key is empty")
    return key


@keys.command("hash")
@click.argument("key")
@click.option("--source", default=None, help="Print the whole LEADFLOW_INGEST_API_KEYS entry for this source.")
def hash_command(key: str, source: str | None) -> None:
    """Print the SHA-256 hash of KEY ('-' reads it from stdin, keeping it out of shell history)."""
    from services.ingest.auth import hash_key

    digest = hash_key(_read_key(key))
    click.echo(f"{source}:{digest}" if source else digest)


@keys.command("new")
@click.argument("source")
def new_command(source: str) -> None:
    """Make a random key for SOURCE; print it once, with its configuration entry."""
    from services.ingest.auth import ApiKeys, hash_key, new_key

    key = new_key()
    entry = f"{source}:{hash_key(key)}"
    try:
        ApiKeys.parse(entry)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="SOURCE") from None
    click.echo(f"key (give it to {source}; it is not stored anywhere): {key}")
    click.echo(f"LEADFLOW_INGEST_API_KEYS entry: {entry}")
