"""The lead stages of contract §3 and the stage each event type moves a lead to (contract §2)."""
from __future__ import annotations

NEW = "new"
IQL = "iql"
MQL = "mql"
SAL = "sal"
SQL = "sql"
OPPORTUNITY = "opportunity"
CUSTOMER = "customer"
REJECTED = "rejected"
RECYCLED = "recycled"
LOST = "lost"
DISQUALIFIED = "disqualified"

# The main path, in order; a lead moves along it forward only, and may skip stages.
MAIN_PATH: tuple[str, ...] = (NEW, IQL, MQL, SAL, SQL, OPPORTUNITY, CUSTOMER)
OFF_PATH: tuple[str, ...] = (REJECTED, RECYCLED, LOST, DISQUALIFIED)
STAGES: tuple[str, ...] = MAIN_PATH + OFF_PATH
MAIN_PATH_INDEX: dict[str, int] = {stage: index for index, stage in enumerate(MAIN_PATH)}

LEAD_CREATED = "lead.created"

# Event types absent here move no stage by their nature (lead.activity, lead.assigned, ...).
STAGE_OF_EVENT_TYPE: dict[str, str] = {
    LEAD_CREATED: NEW,
    "lead.information_qualified": IQL,
    "lead.marketing_qualified": MQL,
    "lead.accepted": SAL,
    "lead.rejected": REJECTED,
    "lead.sales_qualified": SQL,
    "opportunity.created": OPPORTUNITY,
    "deal.won": CUSTOMER,
    "deal.lost": LOST,
    "lead.recycled": RECYCLED,
    "lead.disqualified": DISQUALIFIED,
}

# A lead's fit until a lead.scored or lead.marketing_qualified names one.
UNKNOWN_FIT = "unknown"
