"""The PostgreSQL roles the services log in as: each may do only what its service needs.

- leadflow_lifecycle: read and write the rows of the lifecycle event store's tables.
- leadflow_sla: read and write the rows of the SLA monitor's tables.
- leadflow_reader: read both (the read side: `leadflow lead`, `funnel`, `backtest`).
None is a superuser, none may create databases, roles or schemas, none owns a table (so none can
ALTER, DROP or TRUNCATE one). Ingest does not use PostgreSQL at all.

The tables belong to the admin login (Settings.postgres_dsn) that creates the schema and applies
the migrations; after applying them it grants each role its rows (`grant_component`). A
component's tables are the ones its migration files create, so a table added by a new migration
is granted without editing a list here.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.common.config import Secret, Settings


@dataclass(frozen=True)
class Role:
    name: str
    settings_attr: str      # the Settings field holding its DSN (empty: derived from the admin DSN)


LIFECYCLE = Role("leadflow_lifecycle", "lifecycle_postgres_dsn")
SLA = Role("leadflow_sla", "sla_postgres_dsn")
READER = Role("leadflow_reader", "reader_postgres_dsn")
ROLES = (LIFECYCLE, SLA, READER)

# component (as in services/common/postgres.migrate) -> the role that writes its tables
WRITER = {"lifecycle": LIFECYCLE, "sla_monitor": SLA}

_CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?([a-z_][a-z0-9_]*)\"?", re.I)
_GRANT_LOCK = int.from_bytes(hashlib.sha256(b"leadflow-grants").digest()[:8], "big", signed=True)


def role_dsn(settings: Settings, role: Role) -> Secret:
    """The DSN the role logs in with: its own setting, else the admin DSN with the user name
    swapped for the role's (no password: for a local cluster that trusts 127.0.0.1)."""
    own: Secret = getattr(settings, role.settings_attr)
    if own:
        return own
    parts = urlsplit(settings.postgres_dsn.reveal())
    host = parts.netloc.rpartition("@")[2]
    return Secret(urlunsplit((parts.scheme, f"{role.name}@{host}", parts.path, parts.query, parts.fragment)))


def component_tables(migrations: Path) -> list[str]:
    """The tables a component's migration files create."""
    names: list[str] = []
    for path in sorted(migrations.glob("*.sql")):
        for name in _CREATE_TABLE.findall(_without_comments(path.read_text())):
            if name not in names:
                names.append(name)
    return names


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


async def ensure_roles(conn: asyncpg.Connection, settings: Settings | None = None) -> list[str]:
    """Create the roles that do not exist yet (LOGIN, nothing else); returns the names created.
    A role whose DSN in `settings` carries a password gets it (a server that asks for passwords,
    e.g. the docker-compose one). An existing role is left as it is: its password and attributes
    belong to the operator."""
    created = []
    for role in ROLES:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role.name):
            continue
        password = urlsplit(role_dsn(settings, role).reveal()).password if settings is not None else None
        try:
            await conn.execute(
                f'CREATE ROLE "{role.name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS')
        except asyncpg.DuplicateObjectError:
            continue    # created by another process starting at the same moment
        if password:
            await _set_password(conn, role, password)
        created.append(role.name)
    return created


async def _set_password(conn: asyncpg.Connection, role: Role, password: str) -> None:
    # The statement holds the password: keep it out of the server log should it fail.
    try:
        await conn.execute("SET log_min_error_statement TO panic")
    except asyncpg.InsufficientPrivilegeError:
        pass    # not a superuser: the server's own setting stays
    literal = "'" + password.replace("'", "''") + "'"
    await conn.execute(f'ALTER ROLE "{role.name}" PASSWORD {literal}')
    await conn.execute("RESET log_min_error_statement")


async def grant_component(conn: asyncpg.Connection, schema: str, component: str, migrations: Path) -> None:
    """Grant the component's writer role its tables' rows (and their sequences), and the reader
    role SELECT on them. Serialized across processes: concurrent GRANTs on one object fail."""
    writer = WRITER[component]
    tables = component_tables(migrations)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _GRANT_LOCK)
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{writer.name}", "{READER.name}"')
        quoted = ", ".join(f'"{schema}"."{t}"' for t in tables)
        await conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {quoted} TO "{writer.name}"')
        await conn.execute(f'GRANT SELECT ON {quoted} TO "{READER.name}"')
        sequences = await conn.fetch(
            """SELECT s.relname FROM pg_class s
               JOIN pg_namespace n ON n.oid = s.relnamespace
               JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')
               JOIN pg_class t ON t.oid = d.refobjid
               WHERE s.relkind = 'S' AND n.nspname = $1 AND t.relname = ANY($2::text[])""",
            schema, tables)
        for row in sequences:
            await conn.execute(f'GRANT USAGE, SELECT ON SEQUENCE "{schema}"."{row["relname"]}" TO "{writer.name}"')
