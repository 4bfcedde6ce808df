"""The read side's connection to PostgreSQL: the tables it reads exist from the first use (the
lifecycle's and the SLA monitor's migrations, then the read side's own indexes, applied as the
admin login with the roles' grants), and it reads them as the read-only role leadflow_reader."""
from __future__ import annotations

from pathlib import Path

import asyncpg

from services.common.config import Settings
from services.common.db_roles import READER
from services.common.postgres import connect, create_pool, migrate

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
COMPONENT = "report"
APPLICATION_NAME = "leadflow-report"


async def migrate_read_side(conn: asyncpg.Connection) -> None:
    from services.lifecycle.store import migrate_store as migrate_lifecycle
    from services.sla_monitor.store import migrate_store as migrate_sla

    await migrate_lifecycle(conn)
    await migrate_sla(conn)
    await migrate(conn, COMPONENT, MIGRATIONS)


async def prepare_read_side(settings: Settings) -> None:
    """As the admin login: every migration the read side needs, and the roles' grants."""
    from services.lifecycle.store import prepare_store as prepare_lifecycle
    from services.sla_monitor.store import prepare_store as prepare_sla

    await prepare_lifecycle(settings)
    await prepare_sla(settings)
    conn = await connect(settings)
    try:
        await migrate(conn, COMPONENT, MIGRATIONS)
    finally:
        await conn.close()


async def open_connection(settings: Settings) -> asyncpg.Connection:
    """A read-only connection (leadflow_reader) to a prepared read side."""
    await prepare_read_side(settings)
    return await connect(settings, role=READER)


async def open_pool(settings: Settings, max_size: int = 4) -> asyncpg.Pool:
    await prepare_read_side(settings)
    return await create_pool(settings, min_size=1, max_size=max_size, role=READER,
                             server_settings={"application_name": APPLICATION_NAME})
