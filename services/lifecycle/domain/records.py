"""The two values the lifecycle domain produces: a lead's state and the transition an event caused."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.envelope import Event
from services.lifecycle.domain.frozen_build import draft_class, fast_constructor
from services.lifecycle.domain.stages import UNKNOWN_FIT


@dataclass(frozen=True, slots=True)
class LeadState:
    """A lead as its applied events left it (the lifecycle projection).

    `version` counts the lead's applied events (0 only for the implicit creation of a lead first
    seen through another event). `channel`/`segment` come from its lead.created; `fit` is the
    latest fit of a lead.scored or applied lead.marketing_qualified; `owner`/`team` come from
    lead.assigned (`owner` also from an applied lead.accepted naming one).
    """

    lead_id: str
    stage: str
    version: int
    channel: str | None = None
    segment: str | None = None
    fit: str = UNKNOWN_FIT
    owner: str | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """What one event did to one lead, with the lead's attributes *after* the event.

    `version` is None only for a duplicate. `ignored` is None or one of the contract reasons
    (`backward`, `final`, `not_allowed`, `duplicate`); when set, `to_stage == from_stage`.
    `from_stage` is None for the lead.created that creates the lead; `to_stage` is None only for
    a duplicate event id naming a lead that was never seen (the duplicate does not create it).
    """

    lead_id: str
    event_id: str
    version: int | None
    from_stage: str | None
    to_stage: str | None
    ignored: str | None
    event: Event
    channel: str | None = None
    segment: str | None = None
    fit: str = UNKNOWN_FIT
    owner: str | None = None
    team: str | None = None

    def to_contract_json(self) -> dict[str, Any]:
        """The `--emit transitions` line of contract §5, keys in the contract's order."""
        return {
            "lead_id": self.lead_id,
            "event_id": self.event_id,
            "version": self.version,
            "from": self.from_stage,
            "to": self.to_stage,
            "ignored": self.ignored,
        }


# Hot-path builders: every field, positionally, in the order declared above.
new_lead_state = fast_constructor(LeadState)
new_transition = fast_constructor(Transition)
# Their mutable twins, for the state machine's own inlined builds.
LeadStateDraft = draft_class(LeadState)
TransitionDraft = draft_class(Transition)
