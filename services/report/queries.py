"""The report's queries: aggregates computed by PostgreSQL over the event store (lead_events,
leads) and the SLA monitor's final state (sla_clocks, sla_windows), returned as plain data.

Every query reads one period of event time [start, end) and, optionally, one team. Which team a
row belongs to: an assignment's team at the assignment (S1, S5); a clock's team when it started,
else the team of the lead when the clock was decided, else the lead's current team (S2-S4, S6,
breaches); the lead's current team for lead-level figures (S7, S8). Local days and weeks are in
the calendar's time zone (`tz`). Nothing here loops over a period's rows in Python: the few
per-lead values computed outside SQL (business time to first contact) are left to the caller.

Ids and names are sorted and grouped with COLLATE "C" (byte order): the database's own collation
(C.UTF-8) compares through strcoll, which costs several times more per row in the sorts of
DISTINCT ON and GROUPING SETS over a month of a large store.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import asyncpg

# Stages at or beyond SQL on the main path: a lead in one of them "became an SQL".
SQL_OR_BEYOND = ("sql", "opportunity", "customer")
VOLUME_STAGES = ("new", "iql", "mql", "sal", "sql", "opportunity", "customer")


@dataclass(frozen=True)
class Scope:
    start: datetime
    end: datetime
    tz: str
    team: str | None
    now: datetime


def _team_of_event(alias: str, arg: int) -> str:
    return f"(${arg}::text IS NULL OR {alias}.team = ${arg})"


def _team_of_lead(alias: str, arg: int) -> str:
    return f"(${arg}::text IS NULL OR EXISTS (SELECT 1 FROM leads tl WHERE tl.lead_id = {alias}.lead_id AND tl.team = ${arg}))"


# --- teams ------------------------------------------------------------------------------------------

async def team_known(conn: asyncpg.Connection, team: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM leads WHERE team = $1) OR EXISTS (SELECT 1 FROM lead_events "
        "WHERE type = 'lead.assigned' AND team = $1)", team))


async def teams(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT DISTINCT team FROM leads WHERE team IS NOT NULL ORDER BY team")
    return [r[0] for r in rows]


# --- S1 handoffs -------------------------------------------------------------------------------------

async def handoffs_per_day(conn: asyncpg.Connection, start: datetime, end: datetime, tz: str,
                           team: str | None, good_fit: str) -> list[asyncpg.Record]:
    """Per local day: leads assigned (each lead once per ISO week, at its first assignment in the
    week, with its fit then, as the weekly volume SLA counts them) and how many were a good fit."""
    return await conn.fetch(
        f"""WITH a AS (
                SELECT DISTINCT ON (lead_id, week) lead_id, week, day, fit FROM (
                    SELECT lead_id COLLATE "C" AS lead_id, version, fit, (occurred_at AT TIME ZONE $3)::date AS day,
                           date_trunc('week', occurred_at AT TIME ZONE $3)::date AS week
                    FROM lead_events e
                    WHERE type = 'lead.assigned' AND ignored IS NULL AND occurred_at >= $1 AND occurred_at < $2
                      AND {_team_of_event('e', 4)}) x
                ORDER BY lead_id, week, version)
            SELECT week, day, count(*) AS leads, count(*) FILTER (WHERE fit = $5) AS good_fit
            FROM a GROUP BY week, day ORDER BY day""",
        start, end, tz, team, good_fit)


async def windows(conn: asyncpg.Connection, slas: Sequence[str], start: datetime, end: datetime,
                  owner_team: str | None = None) -> list[asyncpg.Record]:
    """The SLA monitor's windows of these SLAs starting in [start, end) (whole periods: a pace
    checkpoint's window is left out): outcome (null: not judged yet), count, good-fit count, and
    whether a late lead corrected its outcome, as the monitor holds them."""
    return await conn.fetch(
        """SELECT sla, owner, window_start, window_end, outcome,
                  jsonb_array_length(snapshot->'leads') AS count, (snapshot->>'good_fit')::int AS good_fit,
                  (snapshot->>'target')::int AS target,
                  COALESCE((snapshot->>'corrected')::boolean, false) AS corrected
           FROM sla_windows WHERE sla = ANY($1::text[]) AND window_start >= $2 AND window_start < $3
             AND snapshot->>'checkpoint' IS NULL
           ORDER BY window_start, owner""",
        list(slas), start, end)


# --- clocks (S2, S3, S4, S6, breaches) -------------------------------------------------------------

# A clock with the owner and team it is attributed to (see the module doc) and its snapshot fields.
# The stop event and the projection are looked up only for a clock without an owner of its own
# (a speed-to-lead clock starts before the lead is assigned): one index probe each, gated (the
# LIMIT keeps each a per-row lookup rather than a hash join over the whole event store).
ATTRIBUTED_CLOCKS = """
    SELECT c.clock_id, c.sla COLLATE "C" AS sla, c.lead_id COLLATE "C" AS lead_id, c.outcome, c.started_at, c.due_at,
           (c.snapshot->>'stopped_at')::timestamptz AS stopped_at,
           COALESCE((c.snapshot->>'corrected')::boolean, false) AS corrected,
           c.snapshot->>'segment' COLLATE "C" AS segment, c.snapshot->>'channel' AS channel,
           c.snapshot->>'calendar' AS calendar,
           (c.snapshot->>'attempts')::int AS attempts, (c.snapshot->>'required')::int AS required,
           COALESCE(c.snapshot->>'owner', se.owner, l.owner) COLLATE "C" AS owner,
           COALESCE(c.team, se.team, l.team) COLLATE "C" AS team
    FROM sla_clocks c
    LEFT JOIN LATERAL (SELECT e.owner, e.team FROM lead_events e
                       WHERE c.snapshot->>'owner' IS NULL AND e.event_id = c.snapshot->>'stop_event_id'
                       LIMIT 1) se ON true
    LEFT JOIN LATERAL (SELECT p.owner, p.team FROM leads p
                       WHERE c.snapshot->>'owner' IS NULL AND se.owner IS NULL AND p.lead_id = c.lead_id
                       LIMIT 1) l ON true
"""


def _clocks_in_period(where: str = "") -> str:
    return f"""SELECT * FROM ({ATTRIBUTED_CLOCKS}
        WHERE c.sla = ANY($1::text[]) AND c.started_at >= $2 AND c.started_at < $3) k
        WHERE ($4::text IS NULL OR k.team = $4) {where}"""


async def clock_outcomes(conn: asyncpg.Connection, slas: Sequence[str], scope: Scope) -> list[asyncpg.Record]:
    """Outcomes of the clocks started in the period, in ONE pass: per SLA (`g` 7), per SLA and
    team (3), per SLA, team and owner (1), per SLA and segment (6, with the attempts made)."""
    return await conn.fetch(
        f"""SELECT sla, GROUPING(team, owner, segment) AS g, team, owner, segment, count(*) AS clocks,
                   count(*) FILTER (WHERE outcome = 'met') AS met,
                   count(*) FILTER (WHERE outcome = 'breached') AS breached,
                   count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE outcome IS NULL) AS open,
                   count(*) FILTER (WHERE corrected) AS corrected,
                   max(required) AS required,
                   avg(attempts) FILTER (WHERE outcome IN ('met', 'breached')) AS attempts_when_decided
            FROM ({_clocks_in_period()}) p
            GROUP BY GROUPING SETS ((sla), (sla, team), (sla, team, owner), (sla, segment))
            ORDER BY sla, g DESC, team NULLS FIRST, owner NULLS FIRST, segment NULLS LAST""",
        list(slas), scope.start, scope.end, scope.team)


async def open_clocks_due_before(conn: asyncpg.Connection, slas: Sequence[str], before: datetime,
                                 team: str | None, limit: int | None = None) -> list[asyncpg.Record]:
    """Clocks still open (no outcome) whose due time is before `before`, soonest first."""
    return await conn.fetch(
        f"""SELECT * FROM ({ATTRIBUTED_CLOCKS}
                WHERE c.outcome IS NULL AND c.due_at < $2 AND c.sla = ANY($1::text[])) k
            WHERE ($3::text IS NULL OR k.team = $3)
            ORDER BY due_at, lead_id LIMIT $4""",
        list(slas), before, team, limit)


async def contacts(conn: asyncpg.Connection, slas: Sequence[str], scope: Scope, channel: str) -> list[asyncpg.Record]:
    """Speed-to-lead clocks of the period stopped by a contact (met, or breached with a late
    stop), for leads of `channel`: start, first contact and the calendar the clock counted in."""
    return await conn.fetch(
        _clocks_in_period("AND k.channel = $5 AND k.outcome IN ('met', 'breached') AND k.stopped_at IS NOT NULL")
        + " ORDER BY started_at, lead_id",
        list(slas), scope.start, scope.end, scope.team, channel)


async def listed_clocks(conn: asyncpg.Connection, slas: Sequence[str], scope: Scope, condition: str,
                        limit: int) -> list[asyncpg.Record]:
    """The first `limit` by due time of the period's clocks meeting `condition` (the totals are
    clock_outcomes')."""
    return await conn.fetch(
        _clocks_in_period(f"AND ({condition})") + " ORDER BY due_at NULLS LAST, started_at, lead_id LIMIT $5",
        list(slas), scope.start, scope.end, scope.team, limit)


async def feedback_overdue(conn: asyncpg.Connection, slas: Sequence[str], scope: Scope, limit: int) -> list[asyncpg.Record]:
    """Opportunities (closed-loop clocks started before the period's end) without a result at
    `now` although their due time has passed."""
    return await conn.fetch(
        f"""SELECT * FROM ({ATTRIBUTED_CLOCKS}
                WHERE c.sla = ANY($1::text[]) AND c.started_at < $2 AND c.due_at < $3
                  AND (c.outcome IS NULL OR (c.outcome = 'breached' AND c.snapshot->>'stopped_at' IS NULL))) k
            WHERE ($4::text IS NULL OR k.team = $4) ORDER BY due_at, lead_id LIMIT $5""",
        list(slas), scope.end, scope.now, scope.team, limit)


# --- S5 rep volume -------------------------------------------------------------------------------------

async def rep_assignments_cumulative(conn: asyncpg.Connection, start: datetime, end: datetime, tz: str,
                                     team: str | None) -> list[asyncpg.Record]:
    """Per rep and local day: distinct leads first assigned to the rep in [start, end) that day,
    and the running total (as the monthly volume SLA counts them)."""
    return await conn.fetch(
        f"""WITH a AS (
                SELECT DISTINCT ON (owner COLLATE "C", lead_id COLLATE "C") owner COLLATE "C" AS owner, team,
                       lead_id, (occurred_at AT TIME ZONE $3)::date AS day
                FROM lead_events e
                WHERE type = 'lead.assigned' AND ignored IS NULL AND owner IS NOT NULL
                  AND occurred_at >= $1 AND occurred_at < $2 AND {_team_of_event('e', 4)}
                ORDER BY owner COLLATE "C", lead_id COLLATE "C", version)
            SELECT owner, max(team) AS team, day, count(*) AS leads,
                   sum(count(*)) OVER (PARTITION BY owner ORDER BY day) AS cumulative
            FROM a GROUP BY owner, day ORDER BY owner, day""",
        start, end, tz, team)


# --- S6 closed loop --------------------------------------------------------------------------------------

_CAMPAIGN = """(SELECT cr.payload->>'campaign' FROM lead_events cr
                 WHERE cr.lead_id = e.lead_id AND cr.type = 'lead.created' ORDER BY cr.version LIMIT 1)"""


async def deals(conn: asyncpg.Connection, scope: Scope) -> list[asyncpg.Record]:
    """Opportunities created, deals won (with revenue) and lost in the period, per channel and
    campaign of the lead."""
    return await conn.fetch(
        f"""SELECT type, channel, campaign, count(*) AS n, sum(revenue) AS revenue, sum(amount) AS amount FROM (
                SELECT e.type, e.channel, {_CAMPAIGN} AS campaign,
                       CASE WHEN e.type = 'deal.won' THEN (e.payload->>'revenue')::numeric END AS revenue,
                       CASE WHEN e.type = 'opportunity.created' THEN (e.payload->>'amount')::numeric END AS amount
                FROM lead_events e
                WHERE e.type IN ('opportunity.created', 'deal.won', 'deal.lost') AND e.ignored IS NULL
                  AND e.occurred_at >= $1 AND e.occurred_at < $2 AND {_team_of_lead('e', 3)}) d
            GROUP BY type, channel, campaign ORDER BY type, channel NULLS LAST, campaign NULLS LAST""",
        scope.start, scope.end, scope.team)


# --- S7 volumes and conversion ---------------------------------------------------------------------------

async def stage_entries_per_day(conn: asyncpg.Connection, scope: Scope) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT to_stage AS stage, (occurred_at AT TIME ZONE $3)::date AS day, count(*) AS n
            FROM lead_events e
            WHERE ignored IS NULL AND from_stage IS DISTINCT FROM to_stage AND to_stage = ANY($4::text[])
              AND occurred_at >= $1 AND occurred_at < $2 AND {_team_of_lead('e', 5)}
            GROUP BY to_stage, day ORDER BY day, to_stage""",
        scope.start, scope.end, scope.tz, list(VOLUME_STAGES), scope.team)


def _reached_since(stages_arg: int, since_arg: int, now_arg: int) -> str:
    """Per lead, the highest version of an entry into one of the stages that occurred in
    [since, now): read through the stage-entry index, so its cost follows the time from the
    period's start to now, not the store's size."""
    return f"""(SELECT lead_id, max(version) AS version FROM lead_events
               WHERE to_stage = ANY(${stages_arg}::text[]) AND ignored IS NULL AND from_stage IS DISTINCT FROM to_stage
                 AND occurred_at >= ${since_arg} AND occurred_at < ${now_arg}
               GROUP BY lead_id)"""


async def conversion(conn: asyncpg.Connection, scope: Scope, entered: str, reached: Sequence[str]) -> list[asyncpg.Record]:
    """The leads that entered `entered` in the period (each once, at its first entry), per
    channel and per segment (`g` 1: per channel, 2: per segment, 3: total), and how many of them
    later (in log order) entered one of `reached`, that entry occurring between the period's start
    and `now`."""
    return await conn.fetch(
        f"""WITH cohort AS (
                SELECT DISTINCT ON (lead_id COLLATE "C") lead_id, version, channel COLLATE "C" AS channel,
                       segment COLLATE "C" AS segment FROM lead_events e
                WHERE ignored IS NULL AND from_stage IS DISTINCT FROM to_stage AND to_stage = $3
                  AND occurred_at >= $1 AND occurred_at < $2 AND {_team_of_lead('e', 6)}
                ORDER BY lead_id COLLATE "C", version)
            SELECT GROUPING(channel, segment) AS g, channel, segment, count(*) AS leads,
                   count(r.lead_id) AS converted
            FROM cohort c LEFT JOIN {_reached_since(4, 1, 5)} r ON r.lead_id = c.lead_id AND r.version > c.version
            GROUP BY GROUPING SETS ((channel), (segment), ())
            ORDER BY g, channel NULLS LAST, segment NULLS LAST""",
        scope.start, scope.end, entered, list(reached), scope.now, scope.team)


# --- S8 marketing feedback -----------------------------------------------------------------------------

async def rejections(conn: asyncpg.Connection, scope: Scope) -> list[asyncpg.Record]:
    """Rejections in the period by reason (`g` 3), by reason and channel (1), by reason and
    campaign (2)."""
    return await conn.fetch(
        f"""SELECT GROUPING(channel, campaign) AS g, reason, channel, campaign, count(*) AS n FROM (
                SELECT e.payload->>'reason' AS reason, e.channel, {_CAMPAIGN} AS campaign
                FROM lead_events e
                WHERE e.type = 'lead.rejected' AND e.ignored IS NULL AND e.occurred_at >= $1 AND e.occurred_at < $2
                  AND {_team_of_lead('e', 3)}) r
            GROUP BY GROUPING SETS ((reason), (reason, channel), (reason, campaign))
            ORDER BY g DESC, n DESC, reason, channel NULLS LAST, campaign NULLS LAST""",
        scope.start, scope.end, scope.team)


async def content(conn: asyncpg.Connection, scope: Scope) -> list[asyncpg.Record]:
    """Downloads per asset in the period: downloads, distinct leads, how many were rated and rated
    helpful, and how many of the downloading leads entered SQL (or beyond) after a download."""
    return await conn.fetch(
        f"""WITH d AS (
                SELECT e.lead_id, e.version, e.payload->>'asset' AS asset, e.payload->'helpful' AS helpful
                FROM lead_events e
                WHERE e.type = 'lead.activity' AND e.payload->>'kind' = 'download' AND e.ignored IS NULL
                  AND e.occurred_at >= $1 AND e.occurred_at < $2 AND {_team_of_lead('e', 5)})
            SELECT d.asset, count(*) AS downloads, count(DISTINCT d.lead_id COLLATE "C") AS leads,
                   count(*) FILTER (WHERE jsonb_typeof(d.helpful) = 'boolean') AS rated,
                   count(*) FILTER (WHERE d.helpful = 'true'::jsonb) AS helpful,
                   count(DISTINCT d.lead_id COLLATE "C") FILTER (WHERE r.version > d.version) AS became_sql
            FROM d LEFT JOIN {_reached_since(4, 1, 3)} r ON r.lead_id = d.lead_id
            GROUP BY d.asset ORDER BY downloads DESC, d.asset NULLS LAST""",
        scope.start, scope.end, scope.now, list(SQL_OR_BEYOND), scope.team)

