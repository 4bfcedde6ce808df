"""SQL for a month's summary and a lead's SLA clocks. Each function takes a connection whose
search_path is the pipeline's schema and returns plain data (dicts, lists, numbers).

A month is [start, end) in UTC instants (its Berlin midnights). Leads belong to the month they
were created in; clocks to the month they started in; windows to the month they start in. A clock
is attributed to the owner and team on its snapshot, else those of its stop event, else the lead's
current ones (the attribution `leadflow report` uses)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

MAIN_PATH = ("new", "iql", "mql", "sal", "sql", "opportunity", "customer")
OUTCOMES = ("met", "breached", "cancelled", "open")


async def has_table(conn: asyncpg.Connection, name: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)


def _ratio(met: int, breached: int) -> float | None:
    return None if met + breached == 0 else met / (met + breached)


async def funnel(conn: asyncpg.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Leads created in the month and how many of them ever reached each stage (applied events)."""
    rows = await conn.fetch(
        """WITH month_leads AS (SELECT lead_id FROM leads WHERE created_at >= $1 AND created_at < $2)
           SELECT e.to_stage AS stage, count(DISTINCT e.lead_id) AS leads
           FROM lead_events e JOIN month_leads m USING (lead_id)
           WHERE e.ignored IS NULL GROUP BY e.to_stage""", start, end)
    reached = {r["stage"]: r["leads"] for r in rows}
    created = await conn.fetchval("SELECT count(*) FROM leads WHERE created_at >= $1 AND created_at < $2", start, end)
    current = await conn.fetch(
        "SELECT stage, count(*) AS leads FROM leads WHERE created_at >= $1 AND created_at < $2 GROUP BY stage", start, end)
    return {"created": created, "reached": reached, "current": {r["stage"]: r["leads"] for r in current}}


async def mql_to_sql(conn: asyncpg.Connection, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """Leads that entered MQL in the month (each once, at its first entry; an event that keeps an
    MQL an MQL is no entry), and how many of them later in their log entered SQL or beyond, that
    entry occurring between the month's start and `now`: the cohort `leadflow report` reviews (S7)."""
    row = await conn.fetchrow(
        """WITH mql AS (SELECT DISTINCT ON (lead_id) lead_id, version FROM lead_events
                        WHERE to_stage = 'mql' AND from_stage IS DISTINCT FROM to_stage AND ignored IS NULL
                          AND occurred_at >= $1 AND occurred_at < $2
                        ORDER BY lead_id, version)
           SELECT count(*) AS mql,
                  count(*) FILTER (WHERE EXISTS (
                      SELECT 1 FROM lead_events e
                      WHERE e.lead_id = m.lead_id AND e.version > m.version AND e.ignored IS NULL
                        AND e.to_stage IN ('sql', 'opportunity', 'customer') AND e.from_stage IS DISTINCT FROM e.to_stage
                        AND e.occurred_at >= $1 AND e.occurred_at < $3)) AS sql
           FROM mql m""",
        start, end, now)
    return {"mql": row["mql"], "sql": row["sql"], "rate": None if not row["mql"] else row["sql"] / row["mql"]}


_CLOCKS = """
    SELECT c.sla, COALESCE(c.outcome, 'open') AS outcome, c.lead_id, c.started_at, c.due_at,
           (c.snapshot->>'stopped_at')::timestamptz AS stopped_at,
           COALESCE((c.snapshot->>'corrected')::boolean, false) AS corrected,
           COALESCE(c.snapshot->>'owner', se.owner, l.owner) AS owner, COALESCE(c.team, se.team, l.team) AS team
    FROM sla_clocks c
    LEFT JOIN lead_events se ON se.event_id = c.snapshot->>'stop_event_id'
    LEFT JOIN leads l ON l.lead_id = c.lead_id
    WHERE c.started_at >= $1 AND c.started_at < $2"""


async def clock_outcomes(conn: asyncpg.Connection, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """sla -> outcome -> clocks started in the month, plus sla -> outcome -> windows starting in it."""
    out: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(f"SELECT sla, outcome, count(*) AS n FROM ({_CLOCKS}) k GROUP BY sla, outcome", start, end):
        out.setdefault(row["sla"], {})[row["outcome"]] = row["n"]
    for row in await conn.fetch(
            """SELECT sla, COALESCE(outcome, 'open') AS outcome, count(*) AS n FROM sla_windows
               WHERE window_start >= $1 AND window_start < $2 GROUP BY sla, outcome""", start, end):
        out.setdefault(row["sla"], {})[row["outcome"]] = row["n"]
    return out


def attainment_rows(outcomes: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    rows = []
    for sla in sorted(outcomes):
        counts = {o: outcomes[sla].get(o, 0) for o in OUTCOMES}
        rows.append({"sla": sla, **counts, "attainment": _ratio(counts["met"], counts["breached"])})
    return rows


async def attainment_by(conn: asyncpg.Connection, start: datetime, end: datetime, key: str) -> list[dict[str, Any]]:
    """Met and breached clocks of the month per team (`key` "team") or per rep ("owner")."""
    if key not in ("team", "owner"):
        raise ValueError(f"attainment_by: key must be team or owner, got {key!r}")
    group = "team, owner" if key == "owner" else "team"
    rows = await conn.fetch(
        f"""SELECT {group}, count(*) FILTER (WHERE outcome = 'met') AS met,
                   count(*) FILTER (WHERE outcome = 'breached') AS breached
            FROM ({_CLOCKS}) k WHERE {key} IS NOT NULL GROUP BY {group} ORDER BY {group}""", start, end)
    return [{**dict(r), "attainment": _ratio(r["met"], r["breached"])} for r in rows]


async def worst_breaches(conn: asyncpg.Connection, start: datetime, end: datetime, now: datetime,
                         limit: int = 5) -> list[dict[str, Any]]:
    """The month's breached clocks that were (or are) the most overdue: stopped late, or never."""
    rows = await conn.fetch(
        f"""SELECT *, EXTRACT(EPOCH FROM (COALESCE(stopped_at, $3) - due_at))::float8 AS overdue_seconds
            FROM ({_CLOCKS}) k WHERE outcome = 'breached' AND due_at IS NOT NULL
            ORDER BY overdue_seconds DESC, lead_id LIMIT $4""", start, end, now, limit)
    return [dict(r) for r in rows]


async def corrections(conn: asyncpg.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """The month's clocks and windows that were corrected (a breach decided otherwise later, a
    window's outcome changed by a late lead), each counted once however often it was corrected:
    the clocks and windows `leadflow report` lists as corrections."""
    rows = await conn.fetch(
        """SELECT e.sla, count(DISTINCT e.subject_id) AS n FROM sla_emissions e
           WHERE e.kind = 'corrected' AND (
               EXISTS (SELECT 1 FROM sla_clocks c WHERE c.clock_id = e.subject_id AND c.started_at >= $1 AND c.started_at < $2)
            OR EXISTS (SELECT 1 FROM sla_windows w WHERE w.window_id = e.subject_id AND w.window_start >= $1 AND w.window_start < $2))
           GROUP BY e.sla ORDER BY e.sla""", start, end)
    by_sla = {r["sla"]: r["n"] for r in rows}
    return {"total": sum(by_sla.values()), "by_sla": by_sla}


async def windows(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The volume windows starting in the month, with their count and fit share as the monitor holds them."""
    rows = await conn.fetch(
        """SELECT sla, owner, window_start, window_end, COALESCE(outcome, 'open') AS outcome,
                  jsonb_array_length(snapshot->'leads') AS count, (snapshot->>'target')::int AS target,
                  (snapshot->>'good_fit')::int AS good_fit
           FROM sla_windows WHERE window_start >= $1 AND window_start < $2 ORDER BY sla, window_start, owner""",
        start, end)
    out = []
    for r in rows:
        row = dict(r)
        row["fit_share"] = (row["good_fit"] / row["count"]) if r["sla"] == "marketing_weekly_volume" and row["count"] else None
        out.append(row)
    return out


async def window_outcomes(conn: asyncpg.Connection, sla: str) -> list[dict[str, Any]]:
    """Every window of one SLA as the monitor holds it (a campaign goal has one)."""
    rows = await conn.fetch(
        """SELECT window_start, window_end, COALESCE(outcome, 'open') AS outcome,
                  jsonb_array_length(snapshot->'leads') AS count, (snapshot->>'target')::int AS target
           FROM sla_windows WHERE sla = $1 ORDER BY window_start""", sla)
    return [dict(r) for r in rows]


async def campaign_meetings(conn: asyncpg.Connection, campaign: str, start: datetime, end: datetime) -> int:
    """Distinct leads of the campaign (their lead.created payload) with a meeting booked in [start, end)."""
    return await conn.fetchval(
        """SELECT count(DISTINCT m.lead_id) FROM lead_events m
           JOIN lead_events c ON c.lead_id = m.lead_id AND c.type = 'lead.created' AND c.payload->>'campaign' = $1
           WHERE m.type = 'meeting.booked' AND m.occurred_at >= $2 AND m.occurred_at < $3""", campaign, start, end)


async def lead_clocks(conn: asyncpg.Connection, lead_id: str) -> list[dict[str, Any]]:
    """A lead's SLA clocks (none when the SLA monitor has not run against this database)."""
    if not await has_table(conn, "sla_clocks"):
        return []
    rows = await conn.fetch(
        """SELECT sla, COALESCE(outcome, 'open') AS outcome, started_at, due_at,
                  (snapshot->>'stopped_at')::timestamptz AS stopped_at,
                  COALESCE((snapshot->>'corrected')::boolean, false) AS corrected,
                  (snapshot->>'attempts')::int AS attempts, (snapshot->>'required')::int AS required,
                  snapshot->>'owner' AS owner, team, start_event_id
           FROM sla_clocks WHERE lead_id = $1 ORDER BY started_at, sla""", lead_id)
    return [dict(r) for r in rows]
