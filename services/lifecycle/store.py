"""The lifecycle event store in Postgres: every query the service and the CLI commands run.

Tables (migrations/0001_event_store.sql): lead_events, leads (the projection), consumer_offsets,
duplicate_events, unreadable_records. The service writes a batch in ONE transaction with one
statement per table; see docs/lifecycle.md for why that, plus the optimistic offset check, makes
the store exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import asyncpg

from services.common.config import Settings
from services.common.db_roles import LIFECYCLE
from services.common.postgres import create_pool, migrate, prepare_schema
from services.lifecycle.batch import (
    DUPLICATE_COLUMNS, EVENT_COLUMNS, UNREADABLE_COLUMNS, LeadEntry, RoundPlan,
)
from services.lifecycle.domain import LeadState

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
COMPONENT = "lifecycle"
APPLICATION_NAME = "leadflow-lifecycle"   # how the service's connections show in pg_stat_activity


async def migrate_store(conn: asyncpg.Connection) -> list[str]:
    return await migrate(conn, COMPONENT, MIGRATIONS)


async def prepare_store(settings: Settings) -> list[str]:
    """As the admin login: the schema, the store's migrations, and the grants of its roles."""
    return await prepare_schema(settings, COMPONENT, MIGRATIONS)


async def create_store_pool(settings: Settings, min_size: int = 2, max_size: int = 4) -> asyncpg.Pool:
    """The event store's pool, as the lifecycle role: the common one, named, with stalled
    transactions ended."""
    return await create_pool(
        settings, min_size=min_size, max_size=max_size, role=LIFECYCLE,
        server_settings={
            "application_name": APPLICATION_NAME,
            # A stalled instance (a zombie) must not hold a partition's offset row for long: its
            # open transaction is ended and the lock freed for the partition's new owner.
            "idle_in_transaction_session_timeout": "60000",
        },
    )


class OffsetConflict(Exception):
    """The stored position of some partitions was not what this instance expected: another
    instance stored a batch of them in between (it owns them now, or did for a while)."""

    def __init__(self, partitions: Sequence[int]) -> None:
        super().__init__(f"stored offsets moved under us for partitions {sorted(partitions)}")
        self.partitions = frozenset(partitions)


# --- the service's hot path -------------------------------------------------------------------------

_LOAD_LEADS = """
SELECT lead_id, stage, version, channel, segment, fit, owner, team, created_at, updated_at, stage_entered_at
FROM leads WHERE lead_id = ANY($1::text[])
"""

_SEEN_EVENT_IDS = "SELECT event_id FROM lead_events WHERE event_id = ANY($1::text[])"

_ADVANCE_OFFSETS = """
UPDATE consumer_offsets AS o
SET next_offset = v.new_offset, published_hint = COALESCE(v.published, o.published_hint), updated_at = now()
FROM unnest($3::int[], $4::bigint[], $5::bigint[], $6::bigint[]) AS v(partition, expected, new_offset, published)
WHERE o.group_id = $1 AND o.topic = $2 AND o.partition = v.partition AND o.next_offset = v.expected
RETURNING o.partition
"""

_UPSERT_LEADS = """
INSERT INTO leads (lead_id, stage, version, owner, team, channel, segment, fit, created_at, updated_at, stage_entered_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[])
ON CONFLICT (lead_id) DO UPDATE SET
    stage = EXCLUDED.stage, version = EXCLUDED.version, owner = EXCLUDED.owner, team = EXCLUDED.team,
    channel = EXCLUDED.channel, segment = EXCLUDED.segment, fit = EXCLUDED.fit,
    updated_at = EXCLUDED.updated_at, stage_entered_at = EXCLUDED.stage_entered_at
"""


def entry_from_row(row: asyncpg.Record) -> LeadEntry:
    state = LeadState(row["lead_id"], row["stage"], row["version"], row["channel"], row["segment"],
                      row["fit"], row["owner"], row["team"])
    return LeadEntry(state, row["created_at"], row["updated_at"], row["stage_entered_at"])


async def load_leads(conn: asyncpg.Connection, lead_ids: Sequence[str]) -> dict[str, LeadEntry]:
    """The projection entries of these leads (absent ones were never seen). One query."""
    if not lead_ids:
        return {}
    rows = await conn.fetch(_LOAD_LEADS, list(lead_ids))
    return {row["lead_id"]: entry_from_row(row) for row in rows}


async def stored_event_ids(conn: asyncpg.Connection, event_ids: Sequence[str]) -> set[str]:
    """Which of these event ids are already stored. One query."""
    if not event_ids:
        return set()
    rows = await conn.fetch(_SEEN_EVENT_IDS, list(event_ids))
    return {row[0] for row in rows}


async def write_round(conn: asyncpg.Connection, group_id: str, plan: RoundPlan,
                      published: dict[int, int | None]) -> None:
    """Store a planned round in ONE transaction: advance each partition's offset (optimistic check
    first, so concurrent writers of a partition serialise on its row), then the events, the refused
    duplicates, the unreadable records and the projection, one statement per table.

    Raises OffsetConflict (after rolling back) when some partition's stored offset is not the
    expected one. `published` is each partition's last known Kafka group offset (the hint).
    """
    parts = plan.parts
    partitions = [p.partition for p in parts]
    async with conn.transaction():
        moved = await conn.fetch(
            _ADVANCE_OFFSETS, group_id, plan.topic, partitions,
            [p.expected for p in parts], [p.next_offset for p in parts],
            [published.get(p.partition) for p in parts],
        )
        if len(moved) != len(parts):
            done = {r[0] for r in moved}
            raise OffsetConflict([p for p in partitions if p not in done])
        if plan.event_rows:
            await conn.copy_records_to_table("lead_events", records=plan.event_rows, columns=EVENT_COLUMNS)
        if plan.duplicate_rows:
            await conn.copy_records_to_table("duplicate_events", records=plan.duplicate_rows,
                                             columns=DUPLICATE_COLUMNS)
        if plan.unreadable_rows:
            await conn.copy_records_to_table("unreadable_records", records=plan.unreadable_rows,
                                             columns=UNREADABLE_COLUMNS)
        if plan.leads:
            await conn.execute(_UPSERT_LEADS, *plan.lead_columns())


# --- partition ownership and recovery ---------------------------------------------------------------

@dataclass(frozen=True)
class StoredPosition:
    next_offset: int              # stored up to (exclusive)
    published_hint: int | None


async def claim_partition(conn: asyncpg.Connection, group_id: str, topic: str, partition: int) -> StoredPosition:
    """The stored position of an input partition; a partition never seen starts at offset 0."""
    row = await conn.fetchrow(
        """INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, 0)
           ON CONFLICT (group_id, topic, partition) DO UPDATE SET group_id = EXCLUDED.group_id
           RETURNING next_offset, published_hint""",
        group_id, topic, partition,
    )
    return StoredPosition(row["next_offset"], row["published_hint"])


_EVENT_FIELDS = """lead_id, version, event_id, type, occurred_at, source, payload::text AS payload,
    from_stage, to_stage, ignored, channel, segment, fit, owner, team,
    kafka_topic, kafka_partition, kafka_offset, recorded_at"""


async def stored_events_between(conn: asyncpg.Connection, topic: str, partition: int,
                                start: int, end: int) -> list[asyncpg.Record]:
    """Stored events read from input offsets [start, end) of one partition, in offset order."""
    return await conn.fetch(
        f"""SELECT {_EVENT_FIELDS} FROM lead_events
            WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset >= $3 AND kafka_offset < $4
            ORDER BY kafka_offset""",
        topic, partition, start, end,
    )


async def leads_per_stage(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT stage, count(*) AS n FROM leads GROUP BY stage")
    return {r["stage"]: r["n"] for r in rows}


# --- the CLI commands ---------------------------------------------------------------------------------

async def lead_history(conn: asyncpg.Connection, lead_id: str) -> tuple[asyncpg.Record | None, list, list]:
    """(projection row or None, its events in version order, refused duplicates naming it)."""
    lead = await conn.fetchrow("SELECT * FROM leads WHERE lead_id = $1", lead_id)
    events = await conn.fetch(f"SELECT {_EVENT_FIELDS} FROM lead_events WHERE lead_id = $1 ORDER BY version", lead_id)
    duplicates = await conn.fetch(
        """SELECT event_id, type, occurred_at, source, kafka_topic, kafka_partition, kafka_offset, seen_at
           FROM duplicate_events WHERE lead_id = $1 ORDER BY seen_at, kafka_partition, kafka_offset""",
        lead_id,
    )
    return lead, list(events), list(duplicates)


FUNNEL_GROUPS = {"segment": "segment", "channel": "channel", "team": "team"}
FUNNEL_CLOCKS = {"event": "occurred_at", "recorded": "recorded_at"}


async def funnel(conn: asyncpg.Connection, as_of: datetime | None, by: str | None,
                 clock: str = "event") -> list[tuple[str, str | None, int]]:
    """Leads per stage (and group) as they stood at `as_of` (None: now), from the event log.

    A lead's stage at T is the stage after its highest-version event whose time is at or before T
    (`clock` "event": occurred_at; "recorded": when the service stored it). Its group (segment,
    channel, team) is the lead's attribute after that same event. Leads with no event by T are
    not counted.
    """
    time_col = FUNNEL_CLOCKS[clock]
    group_col = FUNNEL_GROUPS[by] if by else "NULL::text"
    where = f"WHERE {time_col} <= $1" if as_of is not None else ""
    args: list[Any] = [as_of] if as_of is not None else []
    rows = await conn.fetch(
        f"""SELECT to_stage, grp, count(*) AS n FROM (
                SELECT DISTINCT ON (lead_id) lead_id, to_stage, {group_col} AS grp
                FROM lead_events {where}
                ORDER BY lead_id, version DESC) AS last
            GROUP BY to_stage, grp""",
        *args,
    )
    return [(r["to_stage"], r["grp"], r["n"]) for r in rows]


async def iter_events_by_lead(conn: asyncpg.Connection, prefetch: int = 5000) -> AsyncIterator[asyncpg.Record]:
    """Every stored event ordered by lead and version, through a cursor (call inside a transaction)."""
    async for row in conn.cursor(
        f"SELECT {_EVENT_FIELDS} FROM lead_events ORDER BY lead_id, version", prefetch=prefetch,
    ):
        yield row


async def all_projection(conn: asyncpg.Connection) -> dict[str, LeadEntry]:
    rows = await conn.fetch(
        "SELECT lead_id, stage, version, channel, segment, fit, owner, team, created_at, updated_at, stage_entered_at FROM leads"
    )
    return {r["lead_id"]: entry_from_row(r) for r in rows}


async def lock_writers(conn: asyncpg.Connection) -> None:
    """Hold every partition's offset row (inside a transaction): running services wait at their
    next batch commit until this transaction ends."""
    await conn.execute("SELECT 1 FROM consumer_offsets FOR UPDATE")


async def rewrite_projection(conn: asyncpg.Connection, entries: dict[str, LeadEntry], delete: Sequence[str]) -> None:
    if delete:
        await conn.execute("DELETE FROM leads WHERE lead_id = ANY($1::text[])", list(delete))
    if entries:
        cols: list[list] = [[] for _ in range(11)]
        for lead_id, e in entries.items():
            s = e.state
            for col, value in zip(cols, (lead_id, s.stage, s.version, s.owner, s.team, s.channel, s.segment,
                                         s.fit, e.created_at, e.updated_at, e.stage_entered_at)):
                col.append(value)
        await conn.execute(_UPSERT_LEADS.replace(
            "updated_at = EXCLUDED.updated_at", "updated_at = EXCLUDED.updated_at, created_at = EXCLUDED.created_at"),
            *cols)
