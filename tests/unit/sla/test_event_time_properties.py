"""Contract v2 §4, "Outcomes follow event time alone", as properties of the engine.

For random streams of a few leads (late arrivals, repeated event ids, every SLA of the built-in
policy), the final outcome of every clock and window is the one `replay_outcomes` gives, when the
engine is driven the way the live service drives it and not the way replay does:
- the leads' events interleaved differently (each lead's own order kept);
- the clock time advanced at arbitrary points between events (to any time up to `until`,
  whether or not an event of that time was seen), never with the largest event time;
- the stream cut into batches anywhere, the engine's state persisted after every batch as the
  service persists it (`take_changes()` into a table) and, at some cuts, the engine restored from
  its snapshot (a restart).

Compared: everything of an outcome line but `corrected`, which says whether a breach had been
declared before the deciding event came, and so depends on when things were processed.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.envelope import parse_event
from services.lifecycle.domain import run_log
from services.sla_monitor.domain import SlaEngine, load_policy, parse_policy, replay_outcomes
from services.sla_monitor.domain.clocks import Clock, Window

POLICY = load_policy()
# The built-in six and every volume goal shape (issue #13): a daily stage count on business days,
# a campaign span, per-owner and per-team months with paces, a share of an attribute, and a
# speed-to-lead clock starting on sql for enterprise leads.
GOALS = parse_policy('''
[calendars.berlin]
timezone = "Europe/Berlin"
holidays = [2026-11-11]

[slas.speed_to_lead]
[[slas.speed_to_lead.overrides]]
when = { segment = "enterprise" }
starts_on = "sql"
[slas.sales_acceptance]
[slas.contact_attempts]
[slas.closed_loop_feedback]
[slas.marketing_weekly_volume]
[slas.rep_monthly_volume]

[slas.daily_mql]
kind = "volume"
calendar = "berlin"
period = "day"
business_days_only = true
counts = { stage = "mql" }
target = 1

[slas.summit_meetings]
kind = "volume"
period = { from = 2026-11-03, to = 2026-11-20 }
counts = "lead.assigned"
scope = { campaign = ["summit"] }
target = 2

[slas.rep_paced]
kind = "volume"
calendar = "berlin"
period = "month"
counts = "lead.assigned"
per = "owner"
target = 3
pace = [{ day = 3, share = 0.3 }, { day = 9, share = 0.6 }]

[slas.team_weekly_sql]
kind = "volume"
period = "week"
counts = { stage = "sql" }
per = "team"
target = 1
pace = "even"
min_share = { segment = "smb", at_least = 0.5 }
''', "goals.toml")
START = datetime(2026, 11, 2, 7, 0, tzinfo=timezone.utc)  # a Monday, 08:00 in Berlin
SPAN = timedelta(days=26)

_TYPES_WEIGHTED = (
    ["lead.marketing_qualified"] * 4 + ["lead.assigned"] * 5 + ["contact.attempted"] * 5
    + ["contact.connected"] * 2 + ["lead.accepted"] * 3 + ["lead.rejected"] * 2 + ["lead.recycled"] * 2
    + ["lead.disqualified"] + ["opportunity.created"] * 2 + ["deal.won", "deal.lost"]
    + ["lead.sales_qualified", "lead.scored", "lead.activity"]
)
_PAYLOADS: dict[str, Any] = {
    "lead.marketing_qualified": st.fixed_dictionaries({}, optional={"fit": st.sampled_from(["good", "poor"])}),
    "lead.assigned": st.fixed_dictionaries({"owner": st.sampled_from(["ana", "ben"]),
                                            "team": st.sampled_from(["emea", "latam"])}),
    "contact.attempted": st.just({"channel": "phone"}),
    "contact.connected": st.just({"channel": "phone"}),
    "lead.accepted": st.just({}),
    "lead.rejected": st.just({"reason": "no_budget"}),
    "lead.recycled": st.sampled_from([{"reason": "no_response"}, {"reason": "timing"}]),
    "lead.disqualified": st.sampled_from([{"reason": "no_response"}, {"reason": "student"}]),
    "opportunity.created": st.just({"opportunity_id": "o1"}),
    "deal.won": st.just({"revenue": 1000}),
    "deal.lost": st.just({"reason": "price"}),
    "lead.sales_qualified": st.just({}),
    "lead.scored": st.fixed_dictionaries({"score": st.just(50), "fit": st.sampled_from(["good", "poor"])}),
    "lead.activity": st.just({"kind": "download"}),
}
# Offsets from a lead's base time: minutes around a one-hour due time, hours around business
# close, days around a two-business-day deadline and the week and month ends.
_OFFSETS = st.one_of(
    st.integers(0, 180).map(lambda m: timedelta(minutes=m)),
    st.integers(0, 72).map(lambda h: timedelta(hours=h)),
    st.integers(0, 12).map(lambda d: timedelta(days=d, minutes=17)),
)


@st.composite
def lead_logs(draw, lead_id: str) -> list[dict]:
    """One lead's events in its log order; occurred_at not in that order (late arrivals)."""
    base = START + timedelta(minutes=draw(st.integers(0, int(SPAN.total_seconds() // 60))))
    created = {"event_id": f"{lead_id}-c", "lead_id": lead_id, "type": "lead.created",
               "occurred_at": base, "source": "website",
               "payload": {"channel": draw(st.sampled_from(["website", "website", "event"])),
                           "segment": draw(st.sampled_from(["smb", "enterprise"])),
                           "campaign": draw(st.sampled_from(["summit", "webinar"]))}}
    events = [created]
    for number in range(draw(st.integers(1, 14))):
        etype = draw(st.sampled_from(_TYPES_WEIGHTED))
        events.append({"event_id": f"{lead_id}-{number}", "lead_id": lead_id, "type": etype,
                       "occurred_at": base + draw(_OFFSETS), "source": "crm", "payload": draw(_PAYLOADS[etype])})
    if draw(st.booleans()):  # a redelivery: same id, later in the log
        events.append(dict(draw(st.sampled_from(events))))
    for event in events:
        event["occurred_at"] = event["occurred_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return events


@st.composite
def streams(draw) -> list[list[dict]]:
    count = draw(st.integers(2, 6))
    return [draw(lead_logs(f"L{n}")) for n in range(count)]


def merged(draw, logs: list[list[dict]]) -> list[dict]:
    """The leads' events interleaved in a drawn order, each lead's own order kept."""
    cursors = [0] * len(logs)
    out: list[dict] = []
    remaining = sum(len(log) for log in logs)
    while remaining:
        choices = [i for i, log in enumerate(logs) if cursors[i] < len(log)]
        pick = draw(st.sampled_from(choices))
        out.append(logs[pick][cursors[pick]])
        cursors[pick] += 1
        remaining -= 1
    return out


def comparable(line: dict[str, Any]) -> str:
    line = {key: value for key, value in line.items() if key != "corrected"}
    return json.dumps(line, sort_keys=True)


def reference(logs: list[list[dict]], until: datetime, policy=POLICY) -> list[str]:
    round_robin = [event for group in zip(*[log + [None] * 20 for log in logs]) for event in group if event]
    transitions = run_log(parse_event(event) for event in round_robin)
    return sorted(comparable(line) for line in replay_outcomes(policy, transitions, until))


def live_like(draw, logs: list[list[dict]], until: datetime, policy=POLICY) -> list[str]:
    """Drive an engine as the service does and read the final outcomes from its persisted rows."""
    order = merged(draw, logs)
    transitions = list(run_log(parse_event(event) for event in order))
    clock_rows: dict[tuple, dict] = {}
    window_rows: dict[tuple, dict] = {}
    engine = SlaEngine(policy, keep_history=False)

    def persist() -> None:
        changes = engine.take_changes()
        for row in changes.clocks:
            clock_rows[(row["sla"], row["lead_id"], row["start_event_id"])] = row
        for row in changes.windows:
            window_rows[(row["sla"], row["owner"], row["window_start"], row["checkpoint"])] = row

    earliest = min(t.event.occurred_at for t in transitions)
    position = 0
    while position < len(transitions):
        size = draw(st.integers(1, 8))
        for transition in transitions[position:position + size]:
            engine.observe(transition)
        position += size
        if draw(st.booleans()):  # the timer fires: any time up to `until`
            seconds = int((until - earliest).total_seconds())
            engine.advance(earliest + timedelta(seconds=draw(st.integers(-3600, seconds))))
        persist()
        if draw(st.integers(0, 4)) == 0:  # a restart: resume from what was persisted
            engine = SlaEngine.restore(policy, json.loads(json.dumps(engine.snapshot())), keep_history=False)
    engine.advance(until)
    persist()
    lines = [Clock.from_snapshot(row).outcome_line() for row in clock_rows.values()]
    lines += [Window.from_snapshot(row).outcome_line() for row in window_rows.values() if row["outcome"] is not None]
    return sorted(comparable(line) for line in lines)


@settings(max_examples=300)
@given(logs=streams(), data=st.data(), extra=st.integers(0, 30))
def test_final_outcomes_do_not_depend_on_interleaving_clock_advances_batches_or_restarts(logs, data, extra):
    latest = max(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for log in logs for e in log)
    until = latest + timedelta(days=extra)
    assert live_like(data.draw, logs, until) == reference(logs, until)


@settings(max_examples=200)
@given(logs=streams(), data=st.data(), extra=st.integers(0, 30))
def test_every_volume_goal_shape_follows_event_time_alone(logs, data, extra):
    latest = max(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for log in logs for e in log)
    until = latest + timedelta(days=extra)
    assert live_like(data.draw, logs, until, GOALS) == reference(logs, until, GOALS)


@settings(max_examples=200)
@given(logs=streams(), data=st.data())
def test_replay_itself_does_not_depend_on_the_interleaving(logs, data):
    latest = max(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for log in logs for e in log)
    order = merged(data.draw, logs)
    lines = replay_outcomes(POLICY, run_log(parse_event(event) for event in order), latest)
    assert sorted(comparable(line) for line in lines) == reference(logs, latest)
