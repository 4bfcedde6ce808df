"""The SLA policy the demo runs the monitor with: deploy/policy/demo.toml (the built-in SLAs; a
month streamed at once pages as it would have live), plus the simulated month's joint campaign
goal (seed 004) as a `kind = "volume"` SLA over the campaign's span. Written to the stack's folder,
since the span depends on the month."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from services.common.config import repo_root
from services.common.timefmt import parse_rfc3339
from services.simulator import SimulatedMonth
from services.simulator.businesstime import BERLIN, berlin_midnight
from services.sla_monitor.domain import default_policy, load_policy

DEMO_POLICY = repo_root() / "deploy" / "policy" / "demo.toml"
CAMPAIGN_SLA = "campaign_meetings"


def campaign_span(month: SimulatedMonth) -> tuple[str, str]:
    """From the month's first day to the day before the conference (both included), Berlin dates."""
    first = month.month_start.astimezone(BERLIN).date()
    last = (parse_rfc3339(month.conference["before"]).astimezone(BERLIN) - timedelta(days=1)).date()
    return first.isoformat(), last.isoformat()


def campaign_bounds(month: SimulatedMonth) -> tuple[datetime, datetime]:
    """The span as instants: [first day 00:00, the day after the last 00:00) in Berlin, UTC."""
    first, last = (date.fromisoformat(day) for day in campaign_span(month))
    return berlin_midnight(first.year, first.month, first.day), berlin_midnight(
        *(last + timedelta(days=1)).timetuple()[:3])


def demo_policy_text(month: SimulatedMonth) -> str:
    first, last = campaign_span(month)
    builtin = "".join(f"\n[slas.{rule.name}]\n" for rule in default_policy().rules)  # contract numbers
    return (DEMO_POLICY.read_text(encoding="utf-8")
            + "\n# The built-in SLAs, as they are (an empty table keeps the contract's numbers).\n" + builtin
            + f"""
# Seed 004: the joint campaign's goal, {month.conference['goal_meetings']} meetings before the conference.
[slas.{CAMPAIGN_SLA}]
kind = "volume"
period = {{ from = {first}, to = {last} }}
counts = "meeting.booked"
scope = {{ campaign = ["{month.conference['campaign']}"] }}
target = {month.conference['goal_meetings']}
""")


def write_demo_policy(month: SimulatedMonth, folder: Path) -> Path:
    """The policy file for this month, checked with the real loader before a service reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-policy-{month.month}.toml"
    path.write_text(demo_policy_text(month), encoding="utf-8")
    load_policy(path)
    return path
