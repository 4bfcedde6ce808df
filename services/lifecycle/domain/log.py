"""Running an event log through the state machine: global event_id dedup and per-lead state.

This is what `leadflow replay --emit transitions`, `leadflow rebuild` and the benchmark call; the
lifecycle service does the same with Postgres holding the states and the seen ids.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from services.common.envelope import Event
from services.lifecycle.domain.machine import StateFields, advance, duplicate_transition, state_fields
from services.lifecycle.domain.records import LeadState, Transition, new_lead_state


class LeadLog:
    """The lifecycle projection of a log read so far: each lead's state and every event id seen.

    Lead states are kept as `machine.StateFields` tuples (cheaper than a LeadState per event);
    `states` builds the LeadStates."""

    __slots__ = ("fields", "seen_event_ids")

    def __init__(self) -> None:
        self.fields: dict[str, StateFields] = {}
        self.seen_event_ids: set[str] = set()

    @property
    def states(self) -> dict[str, LeadState]:
        """Each lead's current state."""
        return {lead_id: new_lead_state(*f) for lead_id, f in self.fields.items()}

    def apply(self, event: Event) -> Transition:
        """Apply the next event of the log; a repeated event_id gives a duplicate transition."""
        event_id = event.event_id
        seen = self.seen_event_ids
        fields = self.fields
        lead_id = event.lead_id
        if event_id in seen:
            prev = fields.get(lead_id)
            return duplicate_transition(None if prev is None else new_lead_state(*prev), event)
        seen.add(event_id)
        fields[lead_id], transition = advance(fields.get(lead_id), event)
        return transition

    def run(self, events: Iterable[Event]) -> Iterator[Transition]:
        """Apply events in log order, yielding one transition per event (duplicates included)."""
        # Same as calling apply() per event, with the lookups hoisted: this loop is the hot path.
        fields = self.fields
        seen = self.seen_event_ids
        get_fields = fields.get
        for event in events:
            event_id = event.event_id
            lead_id = event.lead_id
            if event_id in seen:
                prev = get_fields(lead_id)
                yield duplicate_transition(None if prev is None else new_lead_state(*prev), event)
                continue
            seen.add(event_id)
            fields[lead_id], transition = advance(get_fields(lead_id), event)
            yield transition


def run_log(events: Iterable[Event]) -> Iterator[Transition]:
    """Transitions of a whole log read from the start, in log order (contract §5 `--emit transitions`)."""
    return LeadLog().run(events)


def fold(events: Iterable[Event], state: LeadState | None = None) -> LeadState | None:
    """A lead's state from its stored events (already deduplicated), starting from `state`.

    Gives the same state as the incremental run did: the projection is a replay of the store.
    """
    fields = None if state is None else state_fields(state)
    applied = False
    for event in events:
        fields, _ = advance(fields, event)
        applied = True
    if not applied or fields is None:
        return state  # of nothing: `state` itself
    return new_lead_state(*fields)


def state_after(transition: Transition) -> LeadState:
    """The lead's state right after a recorded (non-duplicate) transition."""
    if transition.version is None or transition.to_stage is None:
        raise ValueError(f"duplicate event {transition.event_id!r} carries no lead state")
    t = transition
    return new_lead_state(t.lead_id, t.to_stage, t.version, t.channel, t.segment, t.fit, t.owner, t.team)


def states_from_transitions(transitions: Iterable[Transition]) -> dict[str, LeadState]:
    """Each lead's state after its last recorded transition; duplicates are skipped."""
    last: dict[str, Transition] = {}
    for transition in transitions:
        if transition.version is not None:
            last[transition.lead_id] = transition
    return {lead_id: state_after(t) for lead_id, t in last.items()}
