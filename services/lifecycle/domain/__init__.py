"""The lead lifecycle of contract §3 as pure code: stages, the state machine, and log replay.

    state: LeadState | None                              # None: the lead was never seen
    new_state, transition = apply_event(state, event)     # pure; never raises for a valid Event
    transition = duplicate_transition(state, event)       # repeated event_id: version None
    for transition in run_log(events): ...                # a whole log, with event_id dedup
"""
from services.lifecycle.domain.log import LeadLog, fold, run_log, state_after, states_from_transitions
from services.lifecycle.domain.machine import apply_event, duplicate_transition
from services.lifecycle.domain.records import LeadState, Transition
from services.lifecycle.domain.rules import (
    BACKWARD,
    DUPLICATE,
    FINAL,
    IGNORE_REASON,
    NOT_ALLOWED,
    ignore_reason,
)
from services.lifecycle.domain.stages import (
    CUSTOMER,
    DISQUALIFIED,
    IQL,
    LOST,
    MAIN_PATH,
    MAIN_PATH_INDEX,
    MQL,
    NEW,
    OFF_PATH,
    OPPORTUNITY,
    RECYCLED,
    REJECTED,
    SAL,
    SQL,
    STAGE_OF_EVENT_TYPE,
    STAGES,
    UNKNOWN_FIT,
)

__all__ = [
    "BACKWARD", "CUSTOMER", "DISQUALIFIED", "DUPLICATE", "FINAL", "IGNORE_REASON", "IQL", "LOST",
    "LeadLog", "LeadState", "MAIN_PATH", "MAIN_PATH_INDEX", "MQL", "NEW", "NOT_ALLOWED", "OFF_PATH",
    "OPPORTUNITY", "RECYCLED", "REJECTED", "SAL", "SQL", "STAGES", "STAGE_OF_EVENT_TYPE",
    "Transition", "UNKNOWN_FIT", "apply_event", "duplicate_transition", "fold", "ignore_reason",
    "run_log", "state_after", "states_from_transitions",
]
