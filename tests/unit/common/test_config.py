from __future__ import annotations

import pytest

from services.common.config import ConfigError, Secret, load_settings, settings_env


def test_defaults_are_the_local_stack():
    s = load_settings({})
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.postgres_dsn.reveal() == "postgresql://postgres@127.0.0.1:15432/leadflow"
    assert s.topics.events == "leadflow.events"
    assert s.topics.all() == ("leadflow.inbound", "leadflow.events", "leadflow.lifecycle", "leadflow.sla", "leadflow.dlq")
    assert s.topic_partitions == 6


def test_ports_move_the_derived_addresses():
    s = load_settings({"LEADFLOW_KAFKA_PORT": "29092", "LEADFLOW_POSTGRES_PORT": "25432"})
    assert s.kafka_bootstrap == "127.0.0.1:29092"
    assert s.postgres_dsn.reveal().endswith("127.0.0.1:25432/leadflow")


def test_secrets_never_show_in_repr_or_describe():
    s = load_settings({
        "LEADFLOW_POSTGRES_DSN": "postgresql://app:hunter2@db:5432/leadflow",
        "LEADFLOW_INGEST_HMAC_SECRET": "topsecret",
    })
    text = repr(s) + str(s.describe())
    assert "hunter2" not in text
    assert "topsecret" not in text
    assert s.ingest_hmac_secret.reveal() == "topsecret"
    assert str(Secret("x")) == "Secret('****')"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"LEADFLOW_KAFKA_PORT": "abc"}, "LEADFLOW_KAFKA_PORT must be a whole number"),
        ({"LEADFLOW_KAFKA_PORT": "70000"}, "LEADFLOW_KAFKA_PORT must be between 1 and 65535"),
        ({"LEADFLOW_TOPIC_PARTITIONS": "0"}, "LEADFLOW_TOPIC_PARTITIONS must be between 1"),
        ({"LEADFLOW_POSTGRES_DSN": "mysql://x"}, "LEADFLOW_POSTGRES_DSN must be a postgresql:// URL"),
        ({"LEADFLOW_POSTGRES_SCHEMA": "Robert'); DROP"}, "LEADFLOW_POSTGRES_SCHEMA must be"),
        ({"LEADFLOW_TOPIC_PREFIX": "a b"}, "LEADFLOW_TOPIC_PREFIX may hold"),
    ],
)
def test_bad_values_name_the_variable(env, names):
    with pytest.raises(ConfigError, match=names.replace("(", r"\(")):
        load_settings(env)


def test_settings_env_round_trips_through_load_settings():
    original = load_settings({
        "LEADFLOW_KAFKA_PORT": "29092", "LEADFLOW_POSTGRES_SCHEMA": "t_abc", "LEADFLOW_TOPIC_PREFIX": "t-1.",
        "LEADFLOW_TOPIC_PARTITIONS": "3", "LEADFLOW_INGEST_API_KEYS": "website:ab12", "LEADFLOW_SLA_POLICY": "/p.toml",
        "LEADFLOW_INSTANCE_ID": "i-1", "LEADFLOW_HOME": "/tmp/lf", "LEADFLOW_SLA_METRICS_PORT": "9999",
    })
    assert load_settings(settings_env(original)) == original


def test_env_numbers_and_flags_name_the_variable():
    from services.common.config import env_flag, env_number

    env = {"A": "2.5", "B": "-1", "C": "x", "F": "off", "G": "maybe"}
    assert env_number(env, "A", 1.0) == 2.5
    assert env_number(env, "MISSING", 7, int) == 7
    with pytest.raises(ConfigError, match="B must be positive"):
        env_number(env, "B", 1)
    with pytest.raises(ConfigError, match="C must be a number"):
        env_number(env, "C", 1)
    assert env_flag(env, "F", True) is False
    assert env_flag(env, "MISSING", True) is True
    with pytest.raises(ConfigError, match="G must be true or false"):
        env_flag(env, "G", True)
