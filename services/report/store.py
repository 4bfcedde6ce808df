"""The read side's connection to PostgreSQL: the tables it reads exist from the first use (the
lifecycle's and the SLA monitor's migrations, then the read side's own indexes)."""
from __future__ import annotations

from pathlib import Path

import asyncpg

from services.common.config import Settings
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


async def open_connection(settings: Settings) -> asyncpg.Connection:
    conn = await connect(settings)
    try:
        await migrate_read_side(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def open_pool(settings: Settings, max_size: int = 4) -> asyncpg.Pool:
    conn = await open_connection(settings)
    await conn.close()
    return await create_pool(settings, min_size=1, max_size=max_size,
                             server_settings={"application_name": APPLICATION_NAME})
