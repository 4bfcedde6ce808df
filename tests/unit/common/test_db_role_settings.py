"""The services' PostgreSQL logins as settings: each role's DSN, given or derived from the admin
DSN; the tables a component's migrations create (what its role is granted). Pure: no server."""
from __future__ import annotations

import pytest

from services.common.config import ConfigError, load_settings, settings_env
from services.common.db_roles import LIFECYCLE, READER, SLA, component_tables, role_dsn
from services.lifecycle.store import MIGRATIONS as LIFECYCLE_MIGRATIONS
from services.sla_monitor.store import MIGRATIONS as SLA_MIGRATIONS


def test_an_unset_role_dsn_is_the_admin_one_with_the_role_as_user_and_no_password():
    s = load_settings({"LEADFLOW_POSTGRES_DSN": "postgresql://admin:hunter2@db.internal:5432/leadflow?sslmode=require"})
    assert role_dsn(s, LIFECYCLE).reveal() == "postgresql://leadflow_lifecycle@db.internal:5432/leadflow?sslmode=require"
    assert role_dsn(s, SLA).reveal() == "postgresql://leadflow_sla@db.internal:5432/leadflow?sslmode=require"
    default = load_settings({})
    assert role_dsn(default, READER).reveal() == "postgresql://leadflow_reader@127.0.0.1:15432/leadflow"


def test_a_role_dsn_given_is_used_as_it_is_and_never_shown():
    s = load_settings({"LEADFLOW_SLA_POSTGRES_DSN": "postgresql://sla_login:s3cret@db:5432/leadflow"})
    assert role_dsn(s, SLA).reveal() == "postgresql://sla_login:s3cret@db:5432/leadflow"
    assert "s3cret" not in repr(s) + str(s.describe())
    assert load_settings(settings_env(s)) == s


@pytest.mark.parametrize("name", ["LEADFLOW_LIFECYCLE_POSTGRES_DSN", "LEADFLOW_SLA_POSTGRES_DSN",
                                  "LEADFLOW_READER_POSTGRES_DSN"])
def test_a_role_dsn_that_is_not_a_postgres_url_names_the_variable(name):
    with pytest.raises(ConfigError, match=f"{name} must be a postgresql:// URL"):
        load_settings({name: "mysql://x"})


def test_each_component_is_granted_the_tables_its_migrations_create():
    assert component_tables(LIFECYCLE_MIGRATIONS) == [
        "lead_events", "leads", "consumer_offsets", "duplicate_events", "unreadable_records"]
    sla = component_tables(SLA_MIGRATIONS)
    assert sla[0] == "sla_owner" and all(t.startswith("sla_") for t in sla)
    assert "sla_emissions" in sla and "sla_unreadable_records" in sla
