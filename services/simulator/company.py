"""Who works at the simulated company (Northwind Analytics, a B2B software vendor in Munich) and
how: its BDRs and their habits, the marketing plan per week, the reasons people give."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rep:
    """A BDR: who they are and how fast they work, in business minutes after assignment."""

    owner: str
    team: str
    share: float                       # of their team's leads
    first_call: tuple[int, int]        # business minutes until the first call
    decision: tuple[int, int]          # business minutes until accept/reject
    attempts_before_giving_up: int     # 6 is the agreement (8 for enterprise); less is a breach
    late_decisions: float = 0.0        # share of decisions that slip by days (on holiday, busy)


# Website leads go to the inbound team, marketing's Monday handoff to the field team.
INBOUND_REPS = (
    Rep("mia.schulz", "inbound", 0.65, (4, 40), (30, 300), 8),
    Rep("jonas.keller", "inbound", 0.35, (20, 150), (120, 720), 6, late_decisions=0.10),
)
FIELD_REPS = (
    Rep("felix.braun", "field", 0.36, (30, 240), (60, 480), 8),
    Rep("sara.lang", "field", 0.30, (120, 900), (480, 1500), 4, late_decisions=0.25),
    Rep("tom.hughes", "field", 0.34, (60, 480), (120, 900), 6),
)
REPS = INBOUND_REPS + FIELD_REPS

# Marketing's Monday handoff per ISO week of the month, in order: (leads, good-fit share).
# Week 2 is short of leads, week 3 is a list of trade-fair badge scans (mostly poor fits).
WEEKLY_HANDOFF = ((52, 0.62), (38, 0.58), (55, 0.28), (51, 0.60), (49, 0.57), (50, 0.60))
# Website leads per day: weekdays, weekend days; a quarter of them outside business hours.
WEBSITE_LEADS_PER_DAY = (17, 4)
WEBSITE_GOOD_FIT = 0.42

HANDOFF_CHANNELS = (("event", 3), ("webinar", 4), ("content", 5), ("referral", 2))
SEGMENTS = (("smb", 5), ("midmarket", 4), ("enterprise", 2))
COUNTRIES = (("DE", 6), ("AT", 2), ("CH", 2), ("NL", 1), ("GB", 1))
ASSETS = ("ebook-lead-scoring", "whitepaper-revops-2026", "checklist-sla", "case-study-logistics",
          "webinar-recording-forecasting")
CAMPAIGNS = ("nurture-q4", "webinar-forecasting", "partner-referrals")

# The joint campaign (seed 004): book 5 meetings with its leads before the conference.
CONFERENCE_CAMPAIGN = "revops-summit"
CONFERENCE_GOAL_MEETINGS = 5
CONFERENCE_DAY = 24            # day of the month the conference opens

REJECT_REASONS = (("no_budget", 4), ("not_decision_maker", 4), ("wrong_segment", 3),
                  ("existing_customer", 1), ("competitor", 1), ("student_or_job_seeker", 2))
DISQUALIFY_REASONS = (("no_need", 3), ("bad_data", 2), ("duplicate_contact", 1))
LOST_REASONS = (("price", 3), ("competitor", 3), ("no_decision", 4), ("timing", 2))
NO_RESPONSE = "no_response"
COMPANY_WORDS = ("Alpen", "Rhein", "Nord", "Isar", "Elbe", "Main", "Spree", "Donau", "Hanse", "Berg")
COMPANY_KINDS = ("Logistik", "Maschinenbau", "Software", "Medizintechnik", "Energie", "Handel", "Bau")
