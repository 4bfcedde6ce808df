"""The console's own queries: a lead's clocks and the open clocks by time left. Owners and teams
are attributed as in the report (services/report/queries.py)."""
from __future__ import annotations

import asyncpg

from services.report.queries import ATTRIBUTED_CLOCKS

AT_RISK_LIMIT = 2000


async def lead_clocks(conn: asyncpg.Connection, lead_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"{ATTRIBUTED_CLOCKS} WHERE c.lead_id = $1 ORDER BY c.started_at, c.clock_id", lead_id)


async def open_clocks(conn: asyncpg.Connection, team: str | None, owner: str | None,
                      limit: int = AT_RISK_LIMIT) -> list[asyncpg.Record]:
    """Open clocks with a due time, soonest first (overdue ones, not yet declared, first of all)."""
    return await conn.fetch(
        f"""SELECT * FROM ({ATTRIBUTED_CLOCKS} WHERE c.outcome IS NULL AND c.due_at IS NOT NULL) k
            WHERE ($1::text IS NULL OR k.team = $1) AND ($2::text IS NULL OR k.owner = $2)
            ORDER BY due_at, lead_id LIMIT $3""",
        team, owner, limit)
