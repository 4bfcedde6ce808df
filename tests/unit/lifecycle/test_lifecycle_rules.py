"""Contract §3, rule by rule: the stage table written out independently, then each rule through apply_event."""
from __future__ import annotations

import pytest

from services.lifecycle.domain import (
    IGNORE_REASON,
    MAIN_PATH,
    OFF_PATH,
    STAGE_OF_EVENT_TYPE,
    STAGES,
    LeadState,
    apply_event,
    ignore_reason,
)

from .builders import make_event

# Row: the lead's stage; column: the stage the event aims at.
# ok = applies (moves, or stays when it names the current stage); bw = backward; fi = final; na = not_allowed.
_EXPECTED_TABLE = """
              new iql mql sal sql opportunity customer rejected recycled lost disqualified
new           ok  ok  ok  ok  ok  ok          ok       na       na       na   ok
iql           bw  ok  ok  ok  ok  ok          ok       na       ok       na   ok
mql           bw  bw  ok  ok  ok  ok          ok       ok       ok       na   ok
sal           bw  bw  bw  ok  ok  ok          ok       ok       ok       ok   ok
sql           bw  bw  bw  bw  ok  ok          ok       na       ok       ok   ok
opportunity   bw  bw  bw  bw  bw  ok          ok       na       ok       ok   ok
customer      fi  fi  fi  fi  fi  fi          ok       fi       fi       fi   fi
rejected      na  na  ok  na  na  na          na       ok       ok       na   ok
recycled      ok  ok  ok  ok  ok  ok          ok       na       ok       na   ok
lost          na  na  na  na  na  na          na       na       ok       ok   na
disqualified  na  na  na  na  na  na          na       na       ok       na   ok
"""
_CODES = {"ok": None, "bw": "backward", "fi": "final", "na": "not_allowed"}


def _expected_cells() -> list[tuple[str, str, str | None]]:
    header, *rows = _EXPECTED_TABLE.strip().splitlines()
    targets = header.split()
    cells = []
    for row in rows:
        from_stage, *codes = row.split()
        cells += [(from_stage, to, _CODES[code]) for to, code in zip(targets, codes, strict=True)]
    return cells


EVENT_TYPE_OF_STAGE = {stage: etype for etype, stage in STAGE_OF_EVENT_TYPE.items()}


def _state(stage: str, version: int = 4) -> LeadState:
    return LeadState("L1", stage, version, "website", "smb", "good", "ana", "emea")


def test_expected_table_covers_every_pair_of_stages():
    assert {(f, t) for f, t, _ in _expected_cells()} == {(f, t) for f in STAGES for t in STAGES}


@pytest.mark.parametrize("from_stage,to_stage,reason", _expected_cells())
def test_stage_table(from_stage, to_stage, reason):
    assert IGNORE_REASON[from_stage][to_stage] == reason
    assert ignore_reason(from_stage, to_stage) == reason


@pytest.mark.parametrize("from_stage,to_stage,reason", _expected_cells())
def test_apply_event_follows_the_table(from_stage, to_stage, reason):
    event = make_event(EVENT_TYPE_OF_STAGE[to_stage])
    state, transition = apply_event(_state(from_stage), event)
    assert transition.from_stage == from_stage
    assert transition.ignored == reason
    expected_stage = to_stage if reason is None else from_stage
    assert transition.to_stage == state.stage == expected_stage
    assert transition.version == state.version == 5


def test_stage_constants():
    assert MAIN_PATH == ("new", "iql", "mql", "sal", "sql", "opportunity", "customer")
    assert OFF_PATH == ("rejected", "recycled", "lost", "disqualified")
    assert STAGE_OF_EVENT_TYPE == {
        "lead.created": "new",
        "lead.information_qualified": "iql",
        "lead.marketing_qualified": "mql",
        "lead.accepted": "sal",
        "lead.rejected": "rejected",
        "lead.sales_qualified": "sql",
        "opportunity.created": "opportunity",
        "deal.won": "customer",
        "deal.lost": "lost",
        "lead.recycled": "recycled",
        "lead.disqualified": "disqualified",
    }


# --- each rule of §3 once more, as a story ------------------------------------------------------

def _run(*steps: tuple[str, dict]) -> list[tuple[str | None, str, str | None]]:
    state = None
    seen = []
    for etype, payload in steps:
        state, t = apply_event(state, make_event(etype, **payload))
        seen.append((t.from_stage, t.to_stage, t.ignored))
    return seen


def test_main_path_moves_forward_and_may_skip():
    assert _run(("lead.created", {}), ("lead.marketing_qualified", {}), ("opportunity.created", {})) == [
        (None, "new", None), ("new", "mql", None), ("mql", "opportunity", None),
    ]


def test_backward_main_path_event_is_recorded_and_ignored():
    state, _ = apply_event(_state("sql"), make_event("lead.accepted"))
    assert (state.stage, state.version) == ("sql", 5)
    _, t = apply_event(_state("sql"), make_event("lead.information_qualified"))
    assert (t.from_stage, t.to_stage, t.ignored, t.version) == ("sql", "sql", "backward", 5)


@pytest.mark.parametrize("etype", sorted(STAGE_OF_EVENT_TYPE.keys() - {"deal.won"}))
def test_customer_is_final(etype):
    _, t = apply_event(_state("customer"), make_event(etype))
    assert (t.to_stage, t.ignored) == ("customer", "final")


def test_recycled_on_customer_is_final():
    _, t = apply_event(_state("customer"), make_event("lead.recycled"))
    assert (t.from_stage, t.to_stage, t.ignored) == ("customer", "customer", "final")


def test_deal_won_on_customer_names_the_current_stage():
    _, t = apply_event(_state("customer"), make_event("deal.won"))
    assert (t.to_stage, t.ignored) == ("customer", None)


@pytest.mark.parametrize("stage", ["mql", "sal"])
def test_rejected_is_reached_from_mql_or_sal(stage):
    _, t = apply_event(_state(stage), make_event("lead.rejected"))
    assert (t.to_stage, t.ignored) == ("rejected", None)


@pytest.mark.parametrize("stage", ["new", "iql", "sql", "opportunity", "recycled", "lost", "disqualified"])
def test_rejected_from_elsewhere_is_not_allowed(stage):
    _, t = apply_event(_state(stage), make_event("lead.rejected"))
    assert (t.to_stage, t.ignored) == (stage, "not_allowed")


@pytest.mark.parametrize("stage", ["sal", "sql", "opportunity"])
def test_lost_is_reached_from_sal_sql_or_opportunity(stage):
    _, t = apply_event(_state(stage), make_event("deal.lost"))
    assert (t.to_stage, t.ignored) == ("lost", None)


@pytest.mark.parametrize("stage", ["new", "iql", "mql", "rejected", "recycled", "disqualified"])
def test_lost_from_elsewhere_is_not_allowed(stage):
    _, t = apply_event(_state(stage), make_event("deal.lost"))
    assert (t.to_stage, t.ignored) == (stage, "not_allowed")


@pytest.mark.parametrize("stage", ["new", "iql", "mql", "sal", "sql", "opportunity", "rejected", "recycled"])
def test_disqualified_from_any_stage_but_customer_lost_and_itself(stage):
    _, t = apply_event(_state(stage), make_event("lead.disqualified"))
    assert (t.to_stage, t.ignored) == ("disqualified", None)


def test_disqualified_from_lost_is_not_allowed_because_only_recycled_leaves_lost():
    _, t = apply_event(_state("lost"), make_event("lead.disqualified"))
    assert (t.to_stage, t.ignored) == ("lost", "not_allowed")


@pytest.mark.parametrize(
    "stage", ["iql", "mql", "sal", "sql", "opportunity", "rejected", "lost", "disqualified"]
)
def test_recycled_from_any_stage_but_new_customer_and_itself(stage):
    _, t = apply_event(_state(stage), make_event("lead.recycled"))
    assert (t.to_stage, t.ignored) == ("recycled", None)


def test_recycled_from_new_is_not_allowed():
    _, t = apply_event(_state("new"), make_event("lead.recycled"))
    assert (t.to_stage, t.ignored) == ("new", "not_allowed")


def test_rejected_lead_may_be_requalified_recycled_or_disqualified():
    for etype, stage in [("lead.marketing_qualified", "mql"), ("lead.recycled", "recycled"),
                         ("lead.disqualified", "disqualified")]:
        _, t = apply_event(_state("rejected"), make_event(etype))
        assert (t.to_stage, t.ignored) == (stage, None)


@pytest.mark.parametrize("etype", ["lead.information_qualified", "lead.accepted", "lead.sales_qualified",
                                   "opportunity.created", "deal.won", "lead.created"])
def test_rejected_lead_other_main_path_moves_are_not_allowed(etype):
    _, t = apply_event(_state("rejected"), make_event(etype))
    assert (t.to_stage, t.ignored) == ("rejected", "not_allowed")


@pytest.mark.parametrize("stage", MAIN_PATH)
def test_recycled_lead_may_reenter_any_main_path_stage(stage):
    _, t = apply_event(_state("recycled"), make_event(EVENT_TYPE_OF_STAGE[stage]))
    assert (t.to_stage, t.ignored) == (stage, None)


@pytest.mark.parametrize("stage", ["lost", "disqualified"])
@pytest.mark.parametrize("etype", sorted(STAGE_OF_EVENT_TYPE.keys() - {"lead.recycled"}))
def test_only_recycled_moves_lost_and_disqualified(stage, etype):
    _, t = apply_event(_state(stage), make_event(etype))
    if STAGE_OF_EVENT_TYPE[etype] == stage:
        assert (t.to_stage, t.ignored) == (stage, None)  # names the current stage
    else:
        assert (t.to_stage, t.ignored) == (stage, "not_allowed")


@pytest.mark.parametrize("stage", STAGES)
def test_event_naming_the_current_stage_applies_without_move(stage):
    _, t = apply_event(_state(stage), make_event(EVENT_TYPE_OF_STAGE[stage]))
    assert (t.from_stage, t.to_stage, t.ignored, t.version) == (stage, stage, None, 5)


_NO_STAGE_TYPES = ["lead.activity", "lead.scored", "lead.assigned", "contact.attempted",
                   "contact.connected", "meeting.booked"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("etype", _NO_STAGE_TYPES)
def test_events_that_move_no_stage_apply_in_every_stage(stage, etype):
    state, t = apply_event(_state(stage), make_event(etype))
    assert (t.from_stage, t.to_stage, t.ignored, t.version) == (stage, stage, None, 5)
    assert state.stage == stage


def test_lead_created_creates_the_lead_at_new_with_from_none():
    state, t = apply_event(None, make_event("lead.created", lead_id="L9", event_id="c1"))
    assert (t.lead_id, t.event_id, t.version, t.from_stage, t.to_stage, t.ignored) == (
        "L9", "c1", 1, None, "new", None)
    assert state == LeadState("L9", "new", 1)


def test_unknown_lead_is_created_at_new_first_and_the_event_is_version_1_from_new():
    state, t = apply_event(None, make_event("lead.marketing_qualified", lead_id="L9"))
    assert (t.version, t.from_stage, t.to_stage, t.ignored) == (1, "new", "mql", None)
    assert (state.lead_id, state.stage, state.version) == ("L9", "mql", 1)


def test_unknown_lead_first_event_not_allowed_from_new_still_creates_it():
    state, t = apply_event(None, make_event("lead.rejected"))
    assert (t.version, t.from_stage, t.to_stage, t.ignored) == (1, "new", "new", "not_allowed")
    assert (state.stage, state.version) == ("new", 1)


def test_unknown_lead_first_event_moving_no_stage():
    state, t = apply_event(None, make_event("lead.activity"))
    assert (t.version, t.from_stage, t.to_stage, t.ignored) == (1, "new", "new", None)
    assert state.stage == "new"
