"""The policy files of docs/policies/ (one per agreement of the seeds) and deploy/policy/ load
with the real policy loader and mean what docs/policy.md says they mean."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.sla_monitor.domain import load_policy

REPO = Path(__file__).resolve().parents[3]
FILES = sorted((REPO / "docs" / "policies").glob("*.toml")) + sorted((REPO / "deploy" / "policy").glob("*.toml"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_policy_file_loads(path):
    policy = load_policy(path)
    assert policy.rules and policy.source == str(path)


def _rule(name: str, sla: str):
    return load_policy(REPO / "docs" / "policies" / name).rule(sla)


def test_the_seed_policies_say_what_the_seeds_agreed():
    weekly = _rule("seed-000-monday-handoff.toml", "marketing_weekly_volume").settings
    assert (weekly.target, weekly.min_fit_share, weekly.fit) == (50, 0.5, "good")
    assert _rule("seed-000-monday-handoff.toml", "sales_acceptance").settings.business_days == 2
    speed = _rule("seed-003-speed-to-lead.toml", "speed_to_lead")
    assert speed.settings.due == timedelta(hours=1) and speed.scope.channel == {"website"}
    assert _rule("seed-003-speed-to-lead-30m.toml", "speed_to_lead").settings.due == timedelta(minutes=30)
    attempts = _rule("seed-003-contact-attempts.toml", "contact_attempts")
    assert [attempts.settings_for(None, size, None, None).required_attempts
            for size in ("smb", "midmarket", "enterprise")] == [4, 6, 8]
    reps = _rule("seed-003-rep-monthly-volume.toml", "rep_monthly_volume")
    assert reps.settings_for(None, None, "field", None).target == 100
    assert reps.settings_for(None, None, "inbound", None).target == 150
    assert _rule("seed-003-closed-loop.toml", "closed_loop_feedback").settings.due == timedelta(days=90)
    campaign = _rule("seed-004-campaign-meetings.toml", "revops_summit_meetings")
    assert (campaign.kind, campaign.settings.counts, campaign.settings.target) == ("volume", ("type", "meeting.booked"), 5)
    assert campaign.scope.campaign == {"revops-summit"}
    daily = _rule("seed-003-daily-mql.toml", "daily_mql").settings
    assert (daily.period, daily.counts, daily.business_days_only, daily.target) == ("day", ("stage", "mql"), True, 10)
    pace = _rule("seed-003-rep-monthly-pace.toml", "rep_monthly_pace").settings
    assert (pace.period, pace.per, pace.pace, pace.target) == ("month", "owner", "even", 150)
