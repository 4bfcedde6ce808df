"""The lead state machine of contract §3: one event in, the lead's next state and the transition out.

Pure: no I/O, no clock, never raises for a valid Event. Duplicate detection (a seen event_id) is
the caller's job, because event ids are global (see `log.py` and docs/architecture.md).

Decisions where the contract is silent (each has a test in tests/unit/lifecycle):
- An ignored event (`backward`, `final`, `not_allowed`) changes the lead's stage *and* its
  progress attributes (fit, owner, team) not at all: "ignored" means it had no effect beyond being
  kept in the history with its reason. A stale lead.accepted must not take an opportunity away
  from its owner, and a late lead.marketing_qualified must not rewrite the fit of a customer.
- `channel` and `segment` describe where the lead came from, not how far it got, so a
  lead.created fills them whenever they are still unknown, even when its stage move is ignored
  (e.g. a lead.created arriving after the lead was implicitly created and moved on is `backward`
  but still tells us the channel). A known channel or segment is never overwritten.
- A second lead.created is a main-path event aiming at `new`: on a lead at `new` it applies with
  no move; further along the main path it is `backward`; from `recycled` it moves the lead back
  to `new` (recycled may re-enter the main path anywhere); elsewhere `not_allowed` or `final`.
- An event naming the stage the lead is already in applies with no move, in every stage
  (including `customer`, `recycled`, `lost`, `disqualified`), and updates attributes as usual.
- Events that move no stage (lead.scored, lead.assigned, ...) are never ignored, also on
  `customer`, `lost` or `disqualified` leads, so a late score or assignment is still recorded.
"""
from __future__ import annotations

from services.common.envelope import Event
from services.lifecycle.domain.records import (
    LeadState, LeadStateDraft, Transition, TransitionDraft, new_transition,
)
from services.lifecycle.domain.rules import DUPLICATE, IGNORE_REASON
from services.lifecycle.domain.stages import LEAD_CREATED, NEW, STAGE_OF_EVENT_TYPE, STAGES, UNKNOWN_FIT

_LEAD_SCORED = "lead.scored"
_LEAD_MARKETING_QUALIFIED = "lead.marketing_qualified"
_LEAD_ASSIGNED = "lead.assigned"
_LEAD_ACCEPTED = "lead.accepted"

# The only event types whose payload changes a lead attribute; all others skip that code.
_CARRIES_ATTRIBUTES = frozenset(
    {LEAD_CREATED, _LEAD_SCORED, _LEAD_MARKETING_QUALIFIED, _LEAD_ASSIGNED, _LEAD_ACCEPTED}
)

# MOVES[stage][event type] = (stage after, ignore reason): STAGE_OF_EVENT_TYPE and IGNORE_REASON
# read together, so the hot path does one look-up. Types that move no stage are absent.
MOVES: dict[str, dict[str, tuple[str, str | None]]] = {
    stage: {
        etype: (stage if IGNORE_REASON[stage][target] is not None else target, IGNORE_REASON[stage][target])
        for etype, target in STAGE_OF_EVENT_TYPE.items()
    }
    for stage in STAGES
}

# A lead's state as `advance` passes it around: LeadState's fields, in its declaration order
# (lead_id, stage, version, channel, segment, fit, owner, team). A tuple costs a fraction of a
# frozen LeadState; `LeadLog` keeps these and builds LeadStates only when asked.
StateFields = tuple


def state_fields(state: LeadState) -> StateFields:
    return (state.lead_id, state.stage, state.version, state.channel, state.segment, state.fit,
            state.owner, state.team)


def advance(prev: StateFields | None, event: Event) -> tuple[StateFields, Transition]:
    """Apply one (non-duplicate) event to its lead; `prev` is the lead's state as StateFields,
    None when the lead was never seen. The rules live here; `apply_event` wraps it.

    Returns the lead's new state (StateFields) and the transition to record. A lead first seen
    through any event but lead.created is created at `new` first, and that event is its version 1
    with from `new`; a creating lead.created has from None.
    """
    etype = event.type
    if prev is None:
        lead_id = event.lead_id
        from_stage = None if etype == LEAD_CREATED else NEW
        stage = NEW
        version = 1
        channel = segment = owner = team = None
        fit = UNKNOWN_FIT
    else:
        lead_id, stage, version, channel, segment, fit, owner, team = prev
        from_stage = stage
        version += 1

    move = MOVES[stage].get(etype)
    if move is None:
        ignored = None
    else:
        stage, ignored = move

    if etype in _CARRIES_ATTRIBUTES:
        payload = event.payload
        if etype == LEAD_CREATED:
            if channel is None:
                channel = payload.get("channel") or None  # "" says nothing either
            if segment is None:
                segment = payload.get("segment") or None
        elif ignored is None:
            if etype == _LEAD_ASSIGNED:
                owner = payload.get("owner") or owner
                team = payload.get("team") or team
            elif etype == _LEAD_ACCEPTED:
                owner = payload.get("owner") or owner
            else:  # lead.scored, lead.marketing_qualified
                fit = payload.get("fit") or fit

    # new_transition inlined (frozen_build.py): this is the hot path.
    t = _TransitionDraft(lead_id, event.event_id, version, from_stage, stage, ignored, event,
                         channel, segment, fit, owner, team)
    t.__class__ = _Transition
    return (lead_id, stage, version, channel, segment, fit, owner, team), t


_TransitionDraft = TransitionDraft
_Transition = Transition


def apply_event(state: LeadState | None, event: Event) -> tuple[LeadState, Transition]:
    """Apply one (non-duplicate) event to its lead; `state` None means the lead was never seen.

    `state` must be the state of `event.lead_id` (the caller looks it up by that key).

    Returns the lead's new state and the transition to record (see `advance`).
    """
    fields, t = advance(None if state is None else (
        state.lead_id, state.stage, state.version, state.channel, state.segment, state.fit,
        state.owner, state.team), event)
    new = LeadStateDraft(*fields)
    new.__class__ = LeadState
    return new, t


def duplicate_transition(state: LeadState | None, event: Event) -> Transition:
    """The transition recorded for an event whose event_id was already seen: no version, no effect.

    `state` is the current state of the lead the duplicate names. Event ids are global, so a
    duplicate may name a lead never seen (its first use was on another lead); the duplicate does
    not create that lead, and the transition then has from and to None.
    """
    if state is None:
        return new_transition(
            event.lead_id, event.event_id, None, None, None, DUPLICATE, event,
            None, None, UNKNOWN_FIT, None, None,
        )
    return new_transition(
        state.lead_id, event.event_id, None, state.stage, state.stage, DUPLICATE, event,
        state.channel, state.segment, state.fit, state.owner, state.team,
    )
