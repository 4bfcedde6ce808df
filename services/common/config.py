"""Typed settings, read from the environment (`LEADFLOW_*`) once at start-up.

Every service and command takes a `Settings` object instead of reading the environment itself,
so tests build one with their own ports, topic prefix and database schema. Secrets are `Secret`
values: printing a Settings never shows them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Mapping


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


class Secret:
    """A string that does not show itself in repr/str/logs. `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def repo_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "deploy").is_dir() and (parent / "services").is_dir():
            return parent
    return Path.cwd()


@dataclass(frozen=True)
class Topics:
    prefix: str = "leadflow."

    @property
    def inbound(self) -> str:
        return f"{self.prefix}inbound"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def lifecycle(self) -> str:
        return f"{self.prefix}lifecycle"

    @property
    def sla(self) -> str:
        return f"{self.prefix}sla"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    def all(self) -> tuple[str, ...]:
        return (self.inbound, self.events, self.lifecycle, self.sla, self.dlq)


@dataclass(frozen=True)
class StackPorts:
    """Ports of the local stack `leadflow up` starts, all on 127.0.0.1."""

    kafka: int = 19092
    kafka_controller: int = 19093
    postgres: int = 15432
    prometheus: int = 19090
    alertmanager: int = 19094


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:19092"
    postgres_dsn: Secret = field(default_factory=lambda: Secret("postgresql://postgres@127.0.0.1:15432/leadflow"))
    postgres_schema: str = "public"
    # The services' own PostgreSQL logins (services/common/db_roles.py); empty: the admin DSN above
    # with the user swapped for the role's name and no password (the local stack's roles).
    lifecycle_postgres_dsn: Secret = field(default_factory=lambda: Secret(""))
    sla_postgres_dsn: Secret = field(default_factory=lambda: Secret(""))
    reader_postgres_dsn: Secret = field(default_factory=lambda: Secret(""))
    topics: Topics = field(default_factory=Topics)
    topic_partitions: int = 6
    topic_replication: int = 1
    topic_min_insync_replicas: int = 1
    # retry of a transaction refused while the previous one's markers are written (common/kafka.py)
    kafka_txn_retry_ms: int = 5
    ports: StackPorts = field(default_factory=StackPorts)
    home: Path = field(default_factory=lambda: repo_root() / ".leadflow")
    # ingest
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    # API keys per source, "source:sha256hex,source2:sha256hex" (hashes, never the keys)
    ingest_api_keys: Secret = field(default_factory=lambda: Secret(""))
    ingest_hmac_secret: Secret = field(default_factory=lambda: Secret(""))
    # the read-only web console (`leadflow console`); keys as ingest's: "name:sha256hex,..."
    console_host: str = "127.0.0.1"
    console_port: int = 8090
    console_api_keys: Secret = field(default_factory=lambda: Secret(""))
    # The key the local stack's Prometheus presents to ingest's /metrics (one of the API keys
    # above, e.g. the `scraper` source's); empty: it scrapes without one (dev mode).
    prometheus_ingest_key: Secret = field(default_factory=lambda: Secret(""))
    # lifecycle / sla monitor metrics ports
    lifecycle_metrics_port: int = 9101
    sla_metrics_port: int = 9102
    sla_policy_file: str = ""
    instance_id: str = field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")

    def with_changes(self, **changes) -> "Settings":
        from dataclasses import replace

        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        """For `leadflow status` and logs: every setting, secrets masked."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if is_dataclass(value):
                for g in fields(value):
                    out[f"{f.name}.{g.name}"] = str(getattr(value, g.name))
            else:
                out[f.name] = str(value)
        return out


_INT = re.compile(r"^-?\d+$")


def _int(env: Mapping[str, str], name: str, default: int, lo: int = 0, hi: int = 65535 * 1000) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.match(raw.strip()):
        raise ConfigError(f"{name} must be a whole number, got {raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    return _int(env, name, default, 1, 65535)


def _check_dsn(name: str, dsn: str) -> None:
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{name} must be a postgresql:// URL")


def _dsn(env: Mapping[str, str], name: str) -> Secret:
    raw = env.get(name) or ""
    if raw:
        _check_dsn(name, raw)
    return Secret(raw)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from LEADFLOW_* variables; unset ones keep the defaults of the local stack."""
    env = os.environ if env is None else env
    ports = StackPorts(
        kafka=_port(env, "LEADFLOW_KAFKA_PORT", StackPorts.kafka),
        kafka_controller=_port(env, "LEADFLOW_KAFKA_CONTROLLER_PORT", StackPorts.kafka_controller),
        postgres=_port(env, "LEADFLOW_POSTGRES_PORT", StackPorts.postgres),
        prometheus=_port(env, "LEADFLOW_PROMETHEUS_PORT", StackPorts.prometheus),
        alertmanager=_port(env, "LEADFLOW_ALERTMANAGER_PORT", StackPorts.alertmanager),
    )
    dsn = env.get("LEADFLOW_POSTGRES_DSN") or f"postgresql://postgres@127.0.0.1:{ports.postgres}/leadflow"
    _check_dsn("LEADFLOW_POSTGRES_DSN", dsn)
    schema = env.get("LEADFLOW_POSTGRES_SCHEMA", "public")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigError(f"LEADFLOW_POSTGRES_SCHEMA must be a lower-case SQL identifier, got {schema!r}")
    prefix = env.get("LEADFLOW_TOPIC_PREFIX", "leadflow.")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", prefix):
        raise ConfigError(f"LEADFLOW_TOPIC_PREFIX may hold letters, digits, '.', '_' and '-', got {prefix!r}")
    home = Path(env["LEADFLOW_HOME"]) if env.get("LEADFLOW_HOME") else repo_root() / ".leadflow"
    defaults = Settings()
    return Settings(
        kafka_bootstrap=env.get("LEADFLOW_KAFKA_BOOTSTRAP") or f"127.0.0.1:{ports.kafka}",
        postgres_dsn=Secret(dsn),
        postgres_schema=schema,
        lifecycle_postgres_dsn=_dsn(env, "LEADFLOW_LIFECYCLE_POSTGRES_DSN"),
        sla_postgres_dsn=_dsn(env, "LEADFLOW_SLA_POSTGRES_DSN"),
        reader_postgres_dsn=_dsn(env, "LEADFLOW_READER_POSTGRES_DSN"),
        topics=Topics(prefix),
        topic_partitions=_int(env, "LEADFLOW_TOPIC_PARTITIONS", 6, 1, 10000),
        topic_replication=_int(env, "LEADFLOW_TOPIC_REPLICATION", 1, 1, 100),
        topic_min_insync_replicas=_int(env, "LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS", 1, 1, 100),
        kafka_txn_retry_ms=_int(env, "LEADFLOW_KAFKA_TXN_RETRY_MS", 5, 1, 1000),
        ports=ports,
        home=home,
        ingest_host=env.get("LEADFLOW_INGEST_HOST", "127.0.0.1"),
        ingest_port=_port(env, "LEADFLOW_INGEST_PORT", 8080),
        ingest_api_keys=Secret(env.get("LEADFLOW_INGEST_API_KEYS", "")),
        ingest_hmac_secret=Secret(env.get("LEADFLOW_INGEST_HMAC_SECRET", "")),
        console_host=env.get("LEADFLOW_CONSOLE_HOST", "127.0.0.1"),
        console_port=_port(env, "LEADFLOW_CONSOLE_PORT", 8090),
        console_api_keys=Secret(env.get("LEADFLOW_CONSOLE_API_KEYS", "")),
        prometheus_ingest_key=Secret(env.get("LEADFLOW_PROMETHEUS_INGEST_KEY", "")),
        lifecycle_metrics_port=_port(env, "LEADFLOW_LIFECYCLE_METRICS_PORT", 9101),
        sla_metrics_port=_port(env, "LEADFLOW_SLA_METRICS_PORT", 9102),
        sla_policy_file=env.get("LEADFLOW_SLA_POLICY", ""),
        instance_id=env.get("LEADFLOW_INSTANCE_ID") or defaults.instance_id,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The LEADFLOW_* variables that make `load_settings` give back these settings: how a parent
    (the demo, tests, the benchmark) hands its settings to a service it starts as a process."""
    p = settings.ports
    return {
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_POSTGRES_DSN": settings.postgres_dsn.reveal(),
        "LEADFLOW_POSTGRES_SCHEMA": settings.postgres_schema,
        "LEADFLOW_LIFECYCLE_POSTGRES_DSN": settings.lifecycle_postgres_dsn.reveal(),
        "LEADFLOW_SLA_POSTGRES_DSN": settings.sla_postgres_dsn.reveal(),
        "LEADFLOW_READER_POSTGRES_DSN": settings.reader_postgres_dsn.reveal(),
        "LEADFLOW_TOPIC_PREFIX": settings.topics.prefix,
        "LEADFLOW_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "LEADFLOW_TOPIC_REPLICATION": str(settings.topic_replication),
        "LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS": str(settings.topic_min_insync_replicas),
        "LEADFLOW_KAFKA_TXN_RETRY_MS": str(settings.kafka_txn_retry_ms),
        "LEADFLOW_KAFKA_PORT": str(p.kafka),
        "LEADFLOW_KAFKA_CONTROLLER_PORT": str(p.kafka_controller),
        "LEADFLOW_POSTGRES_PORT": str(p.postgres),
        "LEADFLOW_PROMETHEUS_PORT": str(p.prometheus),
        "LEADFLOW_ALERTMANAGER_PORT": str(p.alertmanager),
        "LEADFLOW_HOME": str(settings.home),
        "LEADFLOW_INGEST_HOST": settings.ingest_host,
        "LEADFLOW_INGEST_PORT": str(settings.ingest_port),
        "LEADFLOW_INGEST_API_KEYS": settings.ingest_api_keys.reveal(),
        "LEADFLOW_INGEST_HMAC_SECRET": settings.ingest_hmac_secret.reveal(),
        "LEADFLOW_CONSOLE_HOST": settings.console_host,
        "LEADFLOW_CONSOLE_PORT": str(settings.console_port),
        "LEADFLOW_CONSOLE_API_KEYS": settings.console_api_keys.reveal(),
        "LEADFLOW_PROMETHEUS_INGEST_KEY": settings.prometheus_ingest_key.reveal(),
        "LEADFLOW_LIFECYCLE_METRICS_PORT": str(settings.lifecycle_metrics_port),
        "LEADFLOW_SLA_METRICS_PORT": str(settings.sla_metrics_port),
        "LEADFLOW_SLA_POLICY": settings.sla_policy_file,
        "LEADFLOW_INSTANCE_ID": settings.instance_id,
    }


def env_number(env: Mapping[str, str], name: str, default, cast=float, allow_zero: bool = False):
    """A positive number (or zero, with `allow_zero`) from the environment variable `name`, else
    `default`."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'zero or more' if allow_zero else 'positive'}, got {raw!r}")
    return value


def env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """true/false (1/0, yes/no, on/off) from the environment variable `name`, else `default`."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")
