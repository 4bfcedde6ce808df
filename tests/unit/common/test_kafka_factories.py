from __future__ import annotations

import pytest
from aiokafka.producer import sender

from services.common.config import load_settings
from services.common.kafka import make_consumer, make_producer


async def test_a_transactional_producer_retries_concurrent_transactions_quickly(monkeypatch):
    monkeypatch.setattr(sender, "BACKOFF_OVERRIDE", 0.02)   # aiokafka's own value
    producer = make_producer(load_settings({}), transactional_id="leadflow-test")
    assert sender.BACKOFF_OVERRIDE == 0.005
    make_producer(load_settings({"LEADFLOW_KAFKA_TXN_RETRY_MS": "40"}), transactional_id="leadflow-test")
    assert sender.BACKOFF_OVERRIDE == 0.04
    assert producer._txn_manager.transactional_id == "leadflow-test"


async def test_a_plain_producer_leaves_aiokafka_alone(monkeypatch):
    monkeypatch.setattr(sender, "BACKOFF_OVERRIDE", 0.02)
    make_producer(load_settings({}))
    assert sender.BACKOFF_OVERRIDE == 0.02


async def test_a_missing_aiokafka_constant_is_an_error_not_a_silent_loss(monkeypatch):
    monkeypatch.delattr(sender, "BACKOFF_OVERRIDE")
    with pytest.raises(RuntimeError, match="BACKOFF_OVERRIDE is gone"):
        make_producer(load_settings({}), transactional_id="leadflow-test")


async def test_consumers_read_committed_and_commit_by_hand():
    consumer = make_consumer(load_settings({}), "g", "leadflow.events")
    assert consumer._isolation_level == "read_committed"
    assert consumer._enable_auto_commit is False
