"""Postgres plumbing: connection pools bound to the configured schema, and plain-SQL migrations
applied in order and recorded in a table."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.common.config import Settings
from services.common.db_roles import Role, ensure_roles, grant_component, role_dsn

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    """`NNNN_description.sql` files, in version order; a gap or a stray name is an error."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_case_words.sql")
        migrations.append(Migration(int(m.group(1)), path.name, path.read_text()))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(f"{directory}: expected migration {expected:04d}, found {migration.name}")
    return migrations


async def _init_connection(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute(f'SET search_path TO "{schema}"')


async def _create_schema(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.postgres_dsn.reveal())
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{settings.postgres_schema}"')
    finally:
        await conn.close()


def _dsn(settings: Settings, role: Role | None) -> str:
    return (settings.postgres_dsn if role is None else role_dsn(settings, role)).reveal()


async def connect(settings: Settings, role: Role | None = None) -> asyncpg.Connection:
    """A connection working in the configured schema: as the admin login (role None; the schema
    is created if missing), or as one of the services' roles (services/common/db_roles.py)."""
    if role is None:
        await _create_schema(settings)
    conn = await asyncpg.connect(_dsn(settings, role))
    await _init_connection(conn, settings.postgres_schema)
    return conn


async def create_pool(settings: Settings, min_size: int = 1, max_size: int = 8,
                      server_settings: dict[str, str] | None = None, role: Role | None = None) -> asyncpg.Pool:
    """A pool whose connections work in the configured schema, as the admin login (role None;
    the schema is created if missing) or as one of the services' roles."""
    schema = settings.postgres_schema
    if role is None:
        await _create_schema(settings)
    # search_path as a server setting of the connection: a pool runs RESET ALL when a connection
    # comes back, which would undo a SET issued by an init hook.
    return await asyncpg.create_pool(
        _dsn(settings, role), min_size=min_size, max_size=max_size,
        server_settings={"search_path": f'"{schema}"', **(server_settings or {})},
    )


_TABLE_LOCK_KEY = int.from_bytes(hashlib.sha256(b"leadflow-migrations-table").digest()[:8], "big", signed=True)


async def prepare_schema(settings: Settings, component: str, directory: Path) -> list[str]:
    """As the admin login: create the schema, apply the component's migrations, make sure the
    services' roles exist and grant them the component's tables. Returns the migrations applied."""
    conn = await connect(settings)
    try:
        applied = await migrate(conn, component, directory)
        await ensure_roles(conn, settings)
        await grant_component(conn, settings.postgres_schema, component, directory)
    finally:
        await conn.close()
    return applied


async def migrate(conn: asyncpg.Connection, component: str, directory: Path) -> list[str]:
    """Apply the component's pending migrations, each in its own transaction, under an advisory
    lock so that instances starting together apply each migration once. Returns what was applied.
    An applied migration whose file changed since is an error: history is not rewritten."""
    migrations = load_migrations(directory)
    lock_key = int.from_bytes(hashlib.sha256(f"leadflow-migrate-{component}".encode()).digest()[:8], "big", signed=True)
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        # The table is shared by every component: two components starting together on a fresh
        # database would race in CREATE TABLE IF NOT EXISTS (a unique violation on pg_type).
        await conn.execute("SELECT pg_advisory_lock($1)", _TABLE_LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS leadflow_migrations (
                       component text NOT NULL, version int NOT NULL, name text NOT NULL,
                       checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                       PRIMARY KEY (component, version))"""
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _TABLE_LOCK_KEY)
        rows = await conn.fetch("SELECT version, name, checksum FROM leadflow_migrations WHERE component = $1", component)
        applied = {r["version"]: r for r in rows}
        done: list[str] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{component} migration {migration.name} was changed after it was applied; "
                        "add a new migration instead")
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO leadflow_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    component, migration.version, migration.name, migration.checksum)
            done.append(migration.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
