"""Which stage moves contract §3 allows, as one table built at import: IGNORE_REASON[from][to].

The value is the reason an event aiming at `to` is ignored when the lead is in `from`, or None
when the event applies (it moves the lead, or it names the stage the lead is already in).
"""
from __future__ import annotations

from services.lifecycle.domain.stages import (
    CUSTOMER,
    DISQUALIFIED,
    LOST,
    MAIN_PATH_INDEX,
    MQL,
    NEW,
    OPPORTUNITY,
    RECYCLED,
    REJECTED,
    SAL,
    SQL,
    STAGES,
)

# The ignore reasons contract §5 allows.
BACKWARD = "backward"
FINAL = "final"
NOT_ALLOWED = "not_allowed"
DUPLICATE = "duplicate"

# Off-path targets and the stages they may be reached from (besides the exits of §3 below).
_REJECTED_FROM = frozenset({MQL, SAL})
_LOST_FROM = frozenset({SAL, SQL, OPPORTUNITY})
_REJECTED_EXITS = frozenset({MQL, RECYCLED, DISQUALIFIED})


def _reason(from_stage: str, to_stage: str) -> str | None:
    """Contract §3 spelled out once; the hot path only reads the table built from it."""
    if from_stage == to_stage:
        return None  # names the stage the lead is already in: applied, no move
    if from_stage == CUSTOMER:
        return FINAL
    if from_stage in (LOST, DISQUALIFIED):
        # Only lead.recycled moves a lead out of these; this wins over "disqualified from any stage".
        return None if to_stage == RECYCLED else NOT_ALLOWED
    if from_stage == REJECTED:
        return None if to_stage in _REJECTED_EXITS else NOT_ALLOWED
    if to_stage in MAIN_PATH_INDEX:
        if from_stage == RECYCLED:
            return None  # from recycled a lead may re-enter the main path anywhere
        return None if MAIN_PATH_INDEX[to_stage] > MAIN_PATH_INDEX[from_stage] else BACKWARD
    # From here on: from new..opportunity or recycled, to an off-path stage.
    if to_stage == REJECTED:
        return None if from_stage in _REJECTED_FROM else NOT_ALLOWED
    if to_stage == LOST:
        return None if from_stage in _LOST_FROM else NOT_ALLOWED
    if to_stage == RECYCLED:
        return NOT_ALLOWED if from_stage == NEW else None
    if to_stage == DISQUALIFIED:
        return None
    raise ValueError(f"unknown stage {to_stage!r}")


IGNORE_REASON: dict[str, dict[str, str | None]] = {
    from_stage: {to_stage: _reason(from_stage, to_stage) for to_stage in STAGES}
    for from_stage in STAGES
}


def ignore_reason(from_stage: str, to_stage: str) -> str | None:
    """Why a move from `from_stage` to `to_stage` is ignored, or None if it applies."""
    return IGNORE_REASON[from_stage][to_stage]
