"""The SLA monitor's Postgres store: open clocks, window counts, the engine state, the input
offsets and the outbox of emissions (migrations/0001_sla_state.sql).

Every change the engine makes is written by `write()` in ONE transaction: the changed clocks and
windows (upserts), the engine state, the emissions (outbox inserts), the input offsets consumed,
and the unreadable input records. The transaction first checks the writer's epoch, so an instance
that lost ownership cannot commit anything.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from services.common.config import Settings
from services.common.db_roles import SLA
from services.common.postgres import connect, create_pool, migrate, prepare_schema

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
COMPONENT = "sla_monitor"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Fenced(RuntimeError):
    """Another instance claimed the SLA state after this one: this one must stop writing."""


def lock_key(schema: str) -> int:
    """The advisory lock that makes one instance per schema the writer."""
    digest = hashlib.sha256(f"leadflow-sla-monitor:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def create_store_pool(settings: Settings, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """The SLA state's pool, as the SLA role."""
    return await create_pool(settings, min_size=min_size, max_size=max_size, role=SLA)


async def migrate_store(conn: asyncpg.Connection) -> list[str]:
    return await migrate(conn, COMPONENT, MIGRATIONS)


async def prepare_store(settings: Settings) -> list[str]:
    """As the admin login: the schema, the SLA migrations, and the grants of its roles."""
    return await prepare_schema(settings, COMPONENT, MIGRATIONS)


async def connect_store(settings: Settings) -> asyncpg.Connection:
    """One connection as the SLA role (the writer lock's)."""
    return await connect(settings, role=SLA)


async def try_lock(conn: asyncpg.Connection, key: int) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))


async def wait_lock(conn: asyncpg.Connection, key: int) -> None:
    await conn.execute("SELECT pg_advisory_lock($1)", key)


async def claim(conn: asyncpg.Connection, instance: str) -> int:
    """Become the writer: a new epoch, which fences every earlier instance's write transactions.
    Waits for a write transaction of the previous writer in flight (it holds the row FOR SHARE)."""
    return await conn.fetchval(
        "UPDATE sla_owner SET epoch = epoch + 1, instance = $1, since = now() WHERE id = 1 RETURNING epoch",
        instance)


@dataclass
class StoredState:
    snapshot: dict[str, Any] | None          # for SlaEngine.restore; None: nothing stored yet
    policy_version: str | None
    offsets: dict[int, int]                  # input partition -> next offset
    windows: list[dict[str, Any]]            # window snapshots not yet final


async def load_state(conn: asyncpg.Connection, topic: str, lead_attributes: bool = False) -> StoredState:
    """What a starting monitor resumes from; `lead_attributes`: the policy reads them (else the
    table is not read)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow("SELECT policy_version, state FROM sla_engine_state WHERE id = 1")
        clocks = await conn.fetch("SELECT snapshot FROM sla_clocks WHERE NOT final ORDER BY started_at, clock_id")
        windows = await conn.fetch("SELECT snapshot FROM sla_windows WHERE NOT final ORDER BY window_start, window_id")
        offsets = await conn.fetch("SELECT partition, next_offset FROM sla_input_offsets WHERE topic = $1", topic)
        attributes = await conn.fetch("SELECT lead_id, attributes FROM sla_lead_attributes") if lead_attributes else []
    window_snaps = [json.loads(r["snapshot"]) for r in windows]
    snapshot = None
    if row is not None:
        snapshot = dict(json.loads(row["state"]))
        snapshot["clocks"] = [json.loads(r["snapshot"]) for r in clocks]
        snapshot["windows"] = window_snaps
        snapshot["lead_attributes"] = {r["lead_id"]: json.loads(r["attributes"]) for r in attributes}
    return StoredState(
        snapshot=snapshot,
        policy_version=None if row is None else row["policy_version"],
        offsets={r["partition"]: r["next_offset"] for r in offsets},
        windows=window_snaps,
    )


@dataclass
class OutboxRow:
    subject_id: str
    kind: str
    sla: str
    lead_id: str | None
    team: str | None
    outcome: str
    emitted_at: Any  # datetime
    key: bytes
    value: bytes
    revision: int = 0  # a window's emission count (re-judged windows); 0 for clocks
    late: bool = False  # declared long after the time it is about: never paged


@dataclass
class Commit:
    """One transaction's worth of changes."""

    clocks: list[dict[str, Any]] = field(default_factory=list)    # clock snapshots (take_changes)
    windows: list[dict[str, Any]] = field(default_factory=list)   # window snapshots (take_changes)
    state: dict[str, Any] | None = None                           # engine state (take_changes)
    policy_version: str = ""
    emissions: list[OutboxRow] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)          # input partition -> next offset
    unreadable: list[tuple[int, int, bytes | None, bytes | None, str]] = field(default_factory=list)
    lead_attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # lead -> campaign, country

    @property
    def empty(self) -> bool:
        return not (self.clocks or self.windows or self.emissions or self.offsets or self.unreadable)


@dataclass
class Written:
    emission_ids: list[int]
    duplicates: int  # emissions already in the outbox (a retried commit): should be 0
    # The outbox rows this transaction inserted, as the relay publishes them: (id, key, value) in id order.
    published: list[tuple[int, bytes, bytes]] = field(default_factory=list)


async def write(conn: asyncpg.Connection, epoch: int, topic: str, commit: Commit,
                clock_ids: list[str], window_ids: list[str]) -> Written:
    """Apply `commit` in one transaction (see the module doc). Raises Fenced if another instance
    claimed the state since `epoch`."""
    async with conn.transaction():
        current = await conn.fetchval("SELECT epoch FROM sla_owner WHERE id = 1 FOR SHARE")
        if current != epoch:
            raise Fenced(f"the SLA state was claimed by another instance (epoch {current}, ours {epoch})")
        if commit.clocks:
            await _upsert_clocks(conn, commit.clocks, clock_ids)
        if commit.windows:
            await _upsert_windows(conn, commit.windows, window_ids)
        if commit.lead_attributes:
            leads = sorted(commit.lead_attributes)
            await conn.execute(
                """INSERT INTO sla_lead_attributes (lead_id, attributes, updated_at)
                   SELECT l, a::jsonb, now() FROM unnest($1::text[], $2::text[]) AS u(l, a)
                   ON CONFLICT (lead_id) DO UPDATE SET attributes = EXCLUDED.attributes, updated_at = now()""",
                leads, [_dumps(commit.lead_attributes[lead]) for lead in leads])
        if commit.state is not None:
            await conn.execute(
                """INSERT INTO sla_engine_state (id, policy_version, state, updated_at) VALUES (1, $1, $2::jsonb, now())
                   ON CONFLICT (id) DO UPDATE SET policy_version = EXCLUDED.policy_version,
                       state = EXCLUDED.state, updated_at = now()""",
                commit.policy_version, _dumps(commit.state))
        ids: list[int] = []
        inserted: list[tuple[int, bytes, bytes]] = []
        if commit.emissions:
            e = commit.emissions
            rows = await conn.fetch(
                """INSERT INTO sla_emissions (subject_id, kind, sla, lead_id, team, outcome, emitted_at,
                                              record_key, record_value, revision, late)
                   SELECT s, k, sl, l, t, o, e, rk, rv, rev, lt
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                               $7::timestamptz[], $8::bytea[], $9::bytea[], $10::int[], $11::bool[])
                        WITH ORDINALITY AS u(s, k, sl, l, t, o, e, rk, rv, rev, lt, ord)
                   ORDER BY ord
                   ON CONFLICT ON CONSTRAINT sla_emissions_once DO NOTHING
                   RETURNING id, subject_id, kind, revision""",
                [r.subject_id for r in e], [r.kind for r in e], [r.sla for r in e], [r.lead_id for r in e],
                [r.team for r in e], [r.outcome for r in e], [r.emitted_at for r in e],
                [r.key for r in e], [r.value for r in e], [r.revision for r in e], [r.late for r in e])
            by_subject: dict[tuple[str, str, int], OutboxRow] = {}
            for r in e:  # the first of a (subject, kind, revision) is the one inserted (ORDER BY ord)
                by_subject.setdefault((r.subject_id, r.kind, r.revision), r)
            for row_id, subject, kind, revision in sorted(tuple(r) for r in rows):
                mine = by_subject[(subject, kind, revision)]
                inserted.append((row_id, mine.key, mine.value))
            ids = [row[0] for row in inserted]
        if commit.offsets:
            parts = sorted(commit.offsets)
            await conn.execute(
                """INSERT INTO sla_input_offsets (topic, partition, next_offset, updated_at)
                   SELECT $1, p, o, now() FROM unnest($2::int[], $3::bigint[]) AS u(p, o)
                   ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
                       updated_at = now()""",
                topic, parts, [commit.offsets[p] for p in parts])
        if commit.unreadable:
            await conn.executemany(
                """INSERT INTO sla_unreadable_records (topic, partition, "offset", record_key, record_value, error)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
                [(topic, p, o, k, v, err) for p, o, k, v, err in commit.unreadable])
    return Written(ids, len(commit.emissions) - len(ids), inserted)


async def _upsert_clocks(conn: asyncpg.Connection, clocks: list[dict[str, Any]], ids: list[str]) -> None:
    await conn.execute(
        """INSERT INTO sla_clocks (clock_id, sla, lead_id, start_event_id, team, outcome, started_at, due_at,
                                   final, snapshot, updated_at)
           SELECT i, s, l, se, t, o, sa::timestamptz, d::timestamptz, f, j::jsonb, now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::bool[], $10::text[]) AS u(i, s, l, se, t, o, sa, d, f, j)
           ON CONFLICT (clock_id) DO UPDATE SET team = EXCLUDED.team, outcome = EXCLUDED.outcome,
               due_at = EXCLUDED.due_at, final = EXCLUDED.final, snapshot = EXCLUDED.snapshot, updated_at = now()""",
        ids, [c["sla"] for c in clocks], [c["lead_id"] for c in clocks], [c["start_event_id"] for c in clocks],
        [c["team"] for c in clocks], [c["outcome"] for c in clocks], [c["started_at"] for c in clocks],
        [c["due_at"] for c in clocks], [bool(c["final"]) for c in clocks], [_dumps(c) for c in clocks])


async def _upsert_windows(conn: asyncpg.Connection, windows: list[dict[str, Any]], ids: list[str]) -> None:
    await conn.execute(
        """INSERT INTO sla_windows (window_id, sla, owner, window_start, window_end, outcome, final, snapshot,
                                    updated_at)
           SELECT i, s, o, ws::timestamptz, we::timestamptz, oc, f, j::jsonb, now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],
                       $8::text[]) AS u(i, s, o, ws, we, oc, f, j)
           ON CONFLICT (window_id) DO UPDATE SET outcome = EXCLUDED.outcome, final = EXCLUDED.final,
               snapshot = EXCLUDED.snapshot, updated_at = now()""",
        ids, [w["sla"] for w in windows], [w["owner"] for w in windows], [w["window_start"] for w in windows],
        [w["window_end"] for w in windows], [w["outcome"] for w in windows], [bool(w["final"]) for w in windows],
        [_dumps(w) for w in windows])


# --- the relay's side of the outbox -----------------------------------------------------------------

async def outbox_after(conn: asyncpg.Connection, after_id: int, limit: int) -> list[asyncpg.Record]:
    """(id, record_key, record_value) of the outbox rows after `after_id`, in id order."""
    return await conn.fetch(
        "SELECT id, record_key, record_value FROM sla_emissions WHERE id > $1 ORDER BY id LIMIT $2",
        after_id, limit)


async def last_outbox_id(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT COALESCE(max(id), 0) FROM sla_emissions")


async def published_hint(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT published_hint FROM sla_relay_position WHERE id = 1")


async def set_published_hint(conn: asyncpg.Connection, position: int) -> None:
    await conn.execute(
        "UPDATE sla_relay_position SET published_hint = GREATEST(published_hint, $1), updated_at = now() WHERE id = 1",
        position)
