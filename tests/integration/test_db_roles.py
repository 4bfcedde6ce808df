"""The services' PostgreSQL roles on the real server: each does what its service needs and is
refused the rest; none is a superuser; the services' pools log in as them."""
from __future__ import annotations

import asyncpg
import pytest

from services.common.db_roles import LIFECYCLE, READER, ROLES, SLA
from services.common.postgres import connect
from services.lifecycle import store as lifecycle_store
from services.sla_monitor import store as sla_store

pytestmark = pytest.mark.stack

REFUSED = (asyncpg.InsufficientPrivilegeError,)


@pytest.fixture
async def prepared(settings):
    await lifecycle_store.prepare_store(settings)
    await sla_store.prepare_store(settings)
    return settings


async def _as(settings, role):
    return await connect(settings, role=role)


async def _refused(conn, sql: str, *args) -> None:
    with pytest.raises(REFUSED):
        await conn.execute(sql, *args)


async def test_no_role_is_privileged(prepared):
    admin = await connect(prepared)
    try:
        rows = await admin.fetch(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
            "FROM pg_roles WHERE rolname = ANY($1::text[])", [r.name for r in ROLES])
        owners = await admin.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = $1", prepared.postgres_schema)
    finally:
        await admin.close()
    assert sorted(r["rolname"] for r in rows) == sorted(r.name for r in ROLES)
    for row in rows:
        assert row["rolcanlogin"], row
        assert not any(row[k] for k in ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")), row
    assert {r["tableowner"] for r in owners}.isdisjoint({r.name for r in ROLES})


# role -> (statements it must be allowed, statements the server must refuse it)
ABILITIES = {
    LIFECYCLE: (
        ["INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ('g', 't', 0, 5)",
         "UPDATE consumer_offsets SET next_offset = 6 WHERE group_id = 'g'",
         "SELECT next_offset FROM consumer_offsets", "DELETE FROM leads WHERE lead_id = 'none'",
         "SELECT count(*) FROM lead_events"],
        ["SELECT * FROM sla_clocks", "UPDATE sla_owner SET epoch = 99", "DROP TABLE lead_events",
         "TRUNCATE lead_events", "ALTER TABLE leads ADD COLUMN x int", "CREATE TABLE intruder (id int)",
         "DELETE FROM leadflow_migrations", "CREATE SCHEMA intruder"],
    ),
    SLA: (
        ["UPDATE sla_owner SET epoch = epoch + 1 WHERE id = 1",
         # bigserial: the role may draw from the table's sequence
         "INSERT INTO sla_emissions (subject_id, kind, sla, outcome, emitted_at, record_key, record_value) "
         "VALUES ('c', 'start', 's', 'open', now(), '\\x00', '\\x00')",
         "SELECT count(*) FROM sla_clocks"],
        ["SELECT * FROM lead_events", "INSERT INTO leads (lead_id) VALUES ('x')", "DROP TABLE sla_clocks",
         "TRUNCATE sla_emissions", "CREATE TABLE intruder (id int)", "DELETE FROM leadflow_migrations"],
    ),
    READER: (
        ["SELECT count(*) FROM leads", "SELECT count(*) FROM lead_events", "SELECT count(*) FROM sla_clocks",
         "SELECT epoch FROM sla_owner"],
        ["INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ('g', 't', 0, 5)",
         "UPDATE sla_owner SET epoch = 99", "DELETE FROM lead_events", "DROP TABLE leads",
         "CREATE TABLE intruder (id int)", "CREATE SCHEMA intruder"],
    ),
}


@pytest.mark.parametrize("role", list(ABILITIES), ids=lambda r: r.name)
async def test_each_role_does_what_its_service_needs_and_nothing_else(prepared, role):
    allowed, refused = ABILITIES[role]
    conn = await _as(prepared, role)
    try:
        assert await conn.fetchval("SELECT current_user") == role.name
        for sql in allowed:
            await conn.execute(sql)
        for sql in refused:
            await _refused(conn, sql)
    finally:
        await conn.close()


async def test_the_services_pools_log_in_as_their_roles(prepared):
    for create_pool, role in ((lifecycle_store.create_store_pool, LIFECYCLE), (sla_store.create_store_pool, SLA)):
        pool = await create_pool(prepared, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_user") == role.name
                assert await conn.fetchval("SELECT current_schema()") == prepared.postgres_schema
        finally:
            await pool.close()


async def test_a_role_whose_dsn_has_a_password_is_created_with_it(settings):
    """A server that asks for passwords (as docker-compose's does): ensure_roles gives a new role
    the password of its DSN. Checked on a role of this test's own, then dropped."""
    from services.common import db_roles
    from services.common.config import Secret

    role = db_roles.Role(f"leadflow_t_{settings.postgres_schema[2:]}", "reader_postgres_dsn")
    host = settings.postgres_dsn.reveal().rsplit("@", 1)[1]
    s = settings.with_changes(reader_postgres_dsn=Secret(f"postgresql://{role.name}:s3cr'et@{host}"))
    admin = await connect(settings)
    original = db_roles.ROLES
    try:
        db_roles.ROLES = (role,)
        assert await db_roles.ensure_roles(admin, s) == [role.name]
        verifier = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role.name)
        assert verifier and verifier.startswith("SCRAM-SHA-256$")
        assert await db_roles.ensure_roles(admin, s) == []      # exists: left as it is
    finally:
        db_roles.ROLES = original
        await admin.execute(f'DROP ROLE IF EXISTS "{role.name}"')
        await admin.close()
