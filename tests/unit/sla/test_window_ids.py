"""The service's window ids (sla_windows, the outbox, leadflow.sla) are those of the windows'
keys, and a period's pace checkpoints each have their own."""
from __future__ import annotations

from services.sla_monitor.domain import SlaEngine, parse_policy
from services.sla_monitor.records import window_id
from services.sla_monitor.service import _window_id_of

from .helpers import berlin, drive, transition
from .test_volume_goals import PACED  # a per-owner monthly goal with an even pace

def test_every_window_and_checkpoint_has_its_own_id():
    engine = SlaEngine(parse_policy(PACED))
    drive(engine, [transition("lead.activity", berlin(2026, 11, 1), "X", kind="page_view"),
                   transition("lead.assigned", berlin(2026, 11, 3, 10), "A", owner="ana", team="emea")])
    windows = [window for series in engine._series for window in series.all_windows()]
    ids = [_window_id_of(window.to_snapshot()) for window in windows]
    assert ids == [window_id(window.key) for window in windows]
    assert len(set(ids)) == len(ids) == 1 + 20  # the month and its 20 business days (4 November a holiday)
