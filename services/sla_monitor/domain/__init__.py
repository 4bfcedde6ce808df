"""The SLA domain of contract §4: policies, business calendars, clocks and windows. Pure: time is
always passed in, nothing here reads a clock or does I/O (docs/architecture.md)."""
from services.sla_monitor.domain.calendar import DEFAULT_CALENDAR, BusinessCalendar
from services.sla_monitor.domain.clocks import Clock, Emission, Window
from services.sla_monitor.domain.engine import EngineChanges, SlaEngine, TransitionLike, replay_outcomes
from services.sla_monitor.domain.policy import Policy, PolicyError, SlaRule, default_policy, load_policy, parse_policy

__all__ = [
    "DEFAULT_CALENDAR",
    "BusinessCalendar",
    "Clock",
    "Emission",
    "EngineChanges",
    "Policy",
    "PolicyError",
    "SlaEngine",
    "SlaRule",
    "TransitionLike",
    "Window",
    "default_policy",
    "load_policy",
    "parse_policy",
    "replay_outcomes",
]
