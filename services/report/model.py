"""The report as data: one dict of plain JSON values (strings, numbers, lists, dicts), built from
the queries (services/report/queries.py) and the SLA policy. `--format json` prints it as is; the
text, Markdown and HTML renderers read nothing else. docs/report.md explains every field.

Conventions: times are UTC `YYYY-MM-DDTHH:MM:SSZ`, days are local dates of the calendar
(`YYYY-MM-DD`), shares and attainments are fractions rounded to 4 places (null when there is
nothing to divide by); attainment is met / (met + breached): cancelled and open clocks count in
neither. A clock belongs to the period in which it started.
"""
from __future__ import annotations

import statistics
from contextlib import asynccontextmanager
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from time import perf_counter
from typing import Any, Sequence

import asyncpg

from services.common.timefmt import format_utc
from services.report import queries as q
from services.report.period import Period
from services.sla_monitor.domain.calendar import BusinessCalendar
from services.sla_monitor.domain.policy import (
    CLOCK_KINDS, CLOSED_LOOP_FEEDBACK, CONTACT_ATTEMPTS, DEFAULT_CALENDAR_NAME, MARKETING_WEEKLY_VOLUME,
    REP_MONTHLY_VOLUME, SALES_ACCEPTANCE, WINDOW_KINDS,
    SPEED_TO_LEAD, Policy, SlaRule,
)
from services.sla_monitor.domain.windows import month_of

FORMAT_VERSION = 1
DEFAULT_LIST_LIMIT = 500

# The agreements of the seeds (/work/shared/domain.md), by section: (owner, seed, text).
AGREEMENTS: dict[str, tuple[str, str, str]] = {
    "handoffs": ("marketing", "000", "Marketing hands over {target} leads every week (by Monday), "
                                     "at least {share:.0%} of them a good fit."),
    "acceptance": ("sales", "000", "Sales accepts or rejects each assigned lead by business close {days} business "
                                   "days after the start day (assigned Monday: by Wednesday)."),
    "speed_to_lead": ("sales", "003", "Website leads are contacted within {due} of business time after they "
                                      "become an MQL."),
    "contact_attempts": ("sales", "003", "A lead not reached is tried {required} times ({enterprise} for "
                                         "enterprise) before giving up."),
    "rep_volume": ("marketing", "003", "Each rep gets {target} qualified leads a month, spread evenly over the month."),
    "closed_loop": ("sales", "003", "Sales reports back which opportunities closed, with what revenue, within {due}."),
    "volumes": ("marketing", "003", "Lead volume is agreed per day, week and month; MQL to SQL and lead to customer "
                                    "conversion are reviewed monthly."),
    "marketing_feedback": ("sales", "000", "Sales tells marketing why leads were rejected; marketing learns which "
                                           "content helped and converted."),
}


def _share(part: int | float | None, whole: int | float | None) -> float | None:
    if not whole or part is None:
        return None
    return round(part / whole, 4)


def _t(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def _rule(policy: Policy, kind: str) -> SlaRule | None:
    return next((r for r in policy.rules if r.kind == kind and r.settings.enabled), None)


def _names(policy: Policy, kind: str) -> list[str]:
    return [r.name for r in policy.rules if r.kind == kind]


def _agreement(section: str, sla: str | None, **numbers: Any) -> dict[str, Any]:
    owner, seed, text = AGREEMENTS[section]
    return {"sla": sla, "owner": owner, "seed": seed, "text": text.format(**numbers)}


def _duration_text(delta: timedelta | None) -> str | None:
    if delta is None:
        return None
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def _outcomes(row: asyncpg.Record) -> dict[str, Any]:
    return {"clocks": row["clocks"], "met": row["met"], "breached": row["breached"], "cancelled": row["cancelled"],
            "open": row["open"], "corrected": row["corrected"],
            "attainment": _share(row["met"], row["met"] + row["breached"])}


def _attainment(rows: Sequence[asyncpg.Record]) -> dict[str, Any]:
    """{"total": outcomes, "teams": [{team, ...outcomes, reps: [{owner, ...outcomes}]}]}."""
    total = {"clocks": 0, "met": 0, "breached": 0, "cancelled": 0, "open": 0, "corrected": 0, "attainment": None}
    teams: dict[str | None, dict[str, Any]] = {}
    for row in rows:  # clock_outcomes' grouping codes: 7 per SLA, 3 per team, 1 per team and owner
        if row["g"] == 7:
            total = _outcomes(row)
        elif row["g"] == 3:
            teams[row["team"]] = {"team": row["team"], **_outcomes(row), "reps": []}
    for row in rows:
        if row["g"] == 1:
            teams[row["team"]]["reps"].append({"owner": row["owner"], **_outcomes(row)})
    return {"total": total, "teams": list(teams.values())}


def _clock_item(row: asyncpg.Record) -> dict[str, Any]:
    item = {"sla": row["sla"], "lead_id": row["lead_id"], "owner": row["owner"], "team": row["team"],
            "outcome": row["outcome"] or "open", "started_at": _t(row["started_at"]), "due_at": _t(row["due_at"]),
            "stopped_at": _t(row["stopped_at"]), "corrected": row["corrected"]}
    if row["required"] is not None:
        item["attempts"], item["required"] = row["attempts"], row["required"]
    return item


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


# --- sections ------------------------------------------------------------------------------------------

async def _handoffs(conn, policy: Policy, period: Period, scope: q.Scope) -> dict[str, Any]:
    rule = _rule(policy, MARKETING_WEEKLY_VOLUME)
    settings = rule.settings if rule else None
    target = settings.target if settings else None
    min_share = settings.min_fit_share if settings else None
    fit = settings.fit if settings else "good"
    # The weeks that start in the period: a month's report covers its Mondays' whole weeks.
    calendar = report_calendar(policy)
    mondays = [d for d in period.day_list() if d.weekday() == 0]
    start = _local_start(calendar, mondays[0]) if mondays else period.start
    end = _local_start(calendar, mondays[-1] + timedelta(days=7)) if mondays else period.start
    rows = await q.handoffs_per_day(conn, start, end, scope.tz, scope.team, fit) if mondays else []
    monitor = {r["window_start"]: r for r in await q.windows(conn, _names(policy, MARKETING_WEEKLY_VOLUME), start, end)}
    per_day = {r["day"]: r for r in rows}
    days, weeks = [], []
    for monday in mondays:
        week_days = [monday + timedelta(days=i) for i in range(7)]
        leads = sum(per_day[d]["leads"] for d in week_days if d in per_day)
        good = sum(per_day[d]["good_fit"] for d in week_days if d in per_day)
        for d in week_days:
            days.append({"day": d.isoformat(), "leads": per_day[d]["leads"] if d in per_day else 0,
                         "good_fit": per_day[d]["good_fit"] if d in per_day else 0})
        share = _share(good, leads)
        met = None
        if target is not None:
            met = leads >= target and (share is None or min_share is None or share >= min_share)
        window = monitor.get(_local_start(calendar, monday))
        weeks.append({
            "week": _iso_week(monday), "start": monday.isoformat(), "leads": leads, "good_fit": good,
            "fit_share": share, "target": target, "met": met,
            "monitor": None if window is None else {
                "outcome": window["outcome"] or "open", "count": window["count"], "good_fit": window["good_fit"]},
        })
    total_leads = sum(w["leads"] for w in weeks)
    total_good = sum(w["good_fit"] for w in weeks)
    return {
        "agreement": _agreement("handoffs", rule.name if rule else None, target=target or 0, share=min_share or 0.0),
        "target": target, "min_fit_share": min_share, "fit": fit,
        "company_wide_outcome": scope.team is not None,
        "weeks": weeks, "days": days,
        "total": {"leads": total_leads, "good_fit": total_good, "fit_share": _share(total_good, total_leads)},
    }


def report_calendar(policy: Policy) -> BusinessCalendar:
    """The calendar weeks, months and local days are counted in: the weekly volume SLA's."""
    rule = _rule(policy, MARKETING_WEEKLY_VOLUME)
    return policy.calendar_for(rule.settings, None) if rule else policy.calendars[DEFAULT_CALENDAR_NAME]


def _local_start(calendar: BusinessCalendar, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=calendar.zone).astimezone(timezone.utc)


Outcomes = dict[str, list[asyncpg.Record]]   # clock_outcomes' rows per SLA name


def _of(outcomes: Outcomes, rule: SlaRule | None) -> list[asyncpg.Record]:
    return outcomes.get(rule.name, []) if rule else []


async def _acceptance(conn, policy: Policy, scope: q.Scope, limit: int, outcomes: Outcomes) -> dict[str, Any]:
    rule = _rule(policy, SALES_ACCEPTANCE)
    names = [rule.name] if rule else []
    days = rule.settings.business_days if rule else 2
    calendar = policy.calendar_for(rule.settings, None) if rule else policy.calendars[DEFAULT_CALENDAR_NAME]
    # "Due within the next business day": before the close of the business day after today's.
    horizon = calendar.business_close_of_nth_business_day(scope.now, 1)
    due = await q.open_clocks_due_before(conn, names, horizon, scope.team, limit)
    return {
        "agreement": _agreement("acceptance", rule.name if rule else None, days=days),
        "business_days": days,
        "attainment": _attainment(_of(outcomes, rule)),
        "due_soon": {"as_of": _t(scope.now), "horizon": _t(horizon),
                     "clocks": [{**_clock_item(r), "overdue": r["due_at"] < scope.now} for r in due]},
    }


async def _speed_to_lead(conn, policy: Policy, scope: q.Scope, outcomes: Outcomes) -> dict[str, Any]:
    rule = _rule(policy, SPEED_TO_LEAD)
    names = [rule.name] if rule else []
    channel = "website"
    rows = await q.contacts(conn, names, scope, channel)
    # Business time from the clock's start to the first contact, in the calendar the clock was
    # counted in (the domain's arithmetic): only the period's contacted website leads.
    seconds = []
    for r in rows:
        calendar = policy.calendars.get(r["calendar"]) or policy.calendars[DEFAULT_CALENDAR_NAME]
        seconds.append(calendar.business_time_between(r["started_at"], r["stopped_at"]).total_seconds())
    median = statistics.median(seconds) if seconds else None
    return {
        "agreement": _agreement("speed_to_lead", rule.name if rule else None,
                                due=_duration_text(rule.settings.due) if rule else "?"),
        "due": _duration_text(rule.settings.due) if rule else None,
        "attainment": _attainment(_of(outcomes, rule)),
        "first_contact": {"channel": channel, "contacted": len(seconds),
                          "median_business_seconds": median,
                          "p90_business_seconds": _percentile(seconds, 0.9)},
    }


def _contact_attempts(policy: Policy, outcomes: Outcomes) -> dict[str, Any]:
    rule = _rule(policy, CONTACT_ATTEMPTS)
    default_required = rule.settings.required_attempts if rule else None
    enterprise = rule.settings_for(None, "enterprise", None, None).required_attempts if rule else None
    segments = []
    for r in (r for r in _of(outcomes, rule) if r["g"] == 6):  # per segment
        policy_required = rule.settings_for(None, r["segment"], None, None).required_attempts if rule else None
        segments.append({
            "segment": r["segment"], "required": policy_required, "required_by_clocks": r["required"],
            "clocks": r["clocks"], "met": r["met"], "breached": r["breached"], "cancelled": r["cancelled"],
            "open": r["open"], "attainment": _share(r["met"], r["met"] + r["breached"]),
            "attempts_when_decided": None if r["attempts_when_decided"] is None
            else round(float(r["attempts_when_decided"]), 2),
        })
    return {"agreement": _agreement("contact_attempts", rule.name if rule else None,
                                    required=default_required, enterprise=enterprise),
            "required": default_required, "segments": segments}


async def _rep_volume(conn, policy: Policy, period: Period, scope: q.Scope) -> dict[str, Any]:
    rule = _rule(policy, REP_MONTHLY_VOLUME)
    target = rule.settings.target if rule else None
    calendar = policy.calendar_for(rule.settings, None) if rule else policy.calendars[DEFAULT_CALENDAR_NAME]
    month_start, month_end = month_of(calendar, period.start)
    first = calendar.local_date(month_start)
    month_days = (calendar.local_date(month_end - timedelta(seconds=1)) - first).days + 1
    until = min(period.end, month_end, max(scope.now, period.start))
    through = calendar.local_date(until - timedelta(microseconds=1))
    elapsed = (through - first).days + 1
    rows = await q.rep_assignments_cumulative(conn, month_start, until, scope.tz, scope.team)
    monitor = {r["owner"]: r for r in await q.windows(conn, _names(policy, REP_MONTHLY_VOLUME), month_start,
                                                      month_start + timedelta(seconds=1))}
    reps: dict[str, dict[str, Any]] = {}
    for r in rows:
        rep = reps.setdefault(r["owner"], {"owner": r["owner"], "team": r["team"], "leads": 0, "days": []})
        rep["leads"] = int(r["cumulative"])
        rep["days"].append({"day": r["day"].isoformat(), "leads": r["leads"], "cumulative": int(r["cumulative"])})
    pace = None if target is None else round(target * elapsed / month_days, 2)
    out = []
    for owner in sorted(reps):
        rep = reps[owner]
        window = monitor.get(owner)
        out.append({**rep, "target": target, "attainment": _share(rep["leads"], target),
                    "even_pace_to_date": pace, "on_pace": None if pace is None else rep["leads"] >= pace,
                    "monitor_outcome": None if window is None else (window["outcome"] or "open")})
    return {
        "agreement": _agreement("rep_volume", rule.name if rule else None, target=target),
        "target": target, "month": first.strftime("%Y-%m"), "month_days": month_days,
        "through_day": through.isoformat(), "days_elapsed": elapsed, "even_pace_to_date": pace,
        "even_pace_per_day": None if target is None else round(target / month_days, 4),
        "reps": out,
    }


async def _closed_loop(conn, policy: Policy, scope: q.Scope, limit: int, outcomes: Outcomes) -> dict[str, Any]:
    rule = _rule(policy, CLOSED_LOOP_FEEDBACK)
    names = [rule.name] if rule else []
    rows = await q.deals(conn, scope)
    by_channel: dict[Any, dict[str, Any]] = {}
    by_campaign: dict[Any, dict[str, Any]] = {}
    totals = {"opportunities": 0, "won": 0, "lost": 0, "revenue": 0.0, "pipeline_amount": 0.0}
    key = {"opportunity.created": "opportunities", "deal.won": "won", "deal.lost": "lost"}
    for r in rows:  # at most (3 types x channels x campaigns) aggregate rows
        for group, name, value in ((by_channel, "channel", r["channel"]), (by_campaign, "campaign", r["campaign"])):
            g = group.setdefault(value, {name: value, "opportunities": 0, "won": 0, "lost": 0, "revenue": 0.0})
            g[key[r["type"]]] += r["n"]
            g["revenue"] += float(r["revenue"] or 0)
        totals[key[r["type"]]] += r["n"]
        totals["revenue"] += float(r["revenue"] or 0)
        totals["pipeline_amount"] += float(r["amount"] or 0)
    overdue = await q.feedback_overdue(conn, names, scope, limit)
    return {
        "agreement": _agreement("closed_loop", rule.name if rule else None,
                                due=_duration_text(rule.settings.due) if rule else "?"),
        "due": _duration_text(rule.settings.due) if rule else None,
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in totals.items()},
        "win_rate": _share(totals["won"], totals["won"] + totals["lost"]),
        "by_channel": list(by_channel.values()), "by_campaign": list(by_campaign.values()),
        "attainment": _attainment(_of(outcomes, rule)),
        "waiting_past_due": {"as_of": _t(scope.now), "clocks": [_clock_item(r) for r in overdue]},
    }


def _conversion(rows: Sequence[asyncpg.Record]) -> dict[str, Any]:
    def item(r):
        return {"leads": r["leads"], "converted": r["converted"], "rate": _share(r["converted"], r["leads"])}

    total = next((item(r) for r in rows if r["g"] == 3), {"leads": 0, "converted": 0, "rate": None})
    return {"total": total,
            "by_channel": [{"channel": r["channel"], **item(r)} for r in rows if r["g"] == 1],
            "by_segment": [{"segment": r["segment"], **item(r)} for r in rows if r["g"] == 2]}


async def _volumes(conn, period: Period, scope: q.Scope) -> dict[str, Any]:
    stages = list(q.VOLUME_STAGES)
    per_day: dict[date, dict[str, int]] = defaultdict(dict)
    for r in await q.stage_entries_per_day(conn, scope):
        per_day[r["day"]][r["stage"]] = r["n"]
    days, weeks = [], {}
    for d in period.day_list():
        counts = {s: per_day.get(d, {}).get(s, 0) for s in stages}
        days.append({"day": d.isoformat(), **counts})
        week = weeks.setdefault(_iso_week(d), {"week": _iso_week(d), **{s: 0 for s in stages}})
        for s in stages:
            week[s] += counts[s]
    total = {s: sum(day[s] for day in days) for s in stages}
    return {
        "agreement": _agreement("volumes", None), "stages": stages, "days": days,
        "weeks": list(weeks.values()), "total": total,
        "conversion": {
            "as_of": _t(scope.now),
            "mql_to_sql": _conversion(await q.conversion(conn, scope, "mql", q.SQL_OR_BEYOND)),
            "lead_to_customer": _conversion(await q.conversion(conn, scope, "new", ("customer",))),
        },
    }


async def _marketing_feedback(conn, scope: q.Scope) -> dict[str, Any]:
    rows = await q.rejections(conn, scope)
    by_reason = [r for r in rows if r["g"] == 3]
    total = sum(r["n"] for r in by_reason)
    content = []
    for r in await q.content(conn, scope):
        content.append({"asset": r["asset"], "downloads": r["downloads"], "leads": r["leads"], "rated": r["rated"],
                        "helpful": r["helpful"], "helpful_share": _share(r["helpful"], r["rated"]),
                        "became_sql": r["became_sql"], "sql_rate": _share(r["became_sql"], r["leads"])})
    return {
        "agreement": _agreement("marketing_feedback", None),
        "rejections": {
            "total": total,
            "by_reason": [{"reason": r["reason"], "count": r["n"], "share": _share(r["n"], total)} for r in by_reason],
            "by_channel": [{"reason": r["reason"], "channel": r["channel"], "count": r["n"]} for r in rows if r["g"] == 1],
            "by_campaign": [{"reason": r["reason"], "campaign": r["campaign"], "count": r["n"]} for r in rows if r["g"] == 2],
        },
        "content": content,
    }


async def _breaches_and_corrections(conn, policy: Policy, period: Period, scope: q.Scope, limit: int,
                                    outcomes: Outcomes) -> tuple[dict[str, Any], dict[str, Any]]:
    clock_slas = _clock_slas(policy)
    window_slas = [r.name for r in policy.rules if r.kind in WINDOW_KINDS]
    totals = {sla: next(r for r in rows if r["g"] == 7) for sla, rows in outcomes.items()}
    rows = await q.listed_clocks(conn, clock_slas, scope, "k.outcome = 'breached'", limit)
    corrected = await q.listed_clocks(conn, clock_slas, scope, "k.corrected", limit)
    judged = [w for w in await q.windows(conn, window_slas, period.start, period.end)
              if scope.team is None or w["owner"] is not None]
    windows = [w for w in judged if w["outcome"] == "breached"]
    breaches = {
        "clocks": {"total": sum(t["breached"] for t in totals.values()),
                   "by_sla": {sla: t["breached"] for sla, t in sorted(totals.items())},
                   "listed": [_clock_item(r) for r in rows]},
        "windows": [{"sla": w["sla"], "owner": w["owner"], "window_start": _t(w["window_start"]),
                     "window_end": _t(w["window_end"]), "count": w["count"], "target": w["target"],
                     "good_fit": w["good_fit"] if w["owner"] is None else None} for w in windows],
    }
    return breaches, {"total": sum(t["corrected"] for t in totals.values()),
                      "listed": [_clock_item(r) for r in corrected],
                      "windows": [_window_item(w) for w in judged if w["corrected"]]}


def _clock_slas(policy: Policy) -> list[str]:
    return [r.name for r in policy.rules if r.kind in CLOCK_KINDS]


def _window_item(w: asyncpg.Record) -> dict[str, Any]:
    return {"sla": w["sla"], "owner": w["owner"], "window_start": _t(w["window_start"]),
            "window_end": _t(w["window_end"]), "outcome": w["outcome"] or "open", "count": w["count"],
            "target": w["target"]}


# --- the whole report -----------------------------------------------------------------------------------

class _Timer:
    """Seconds per step into `timings` (the benchmark's breakdown), when given."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    @asynccontextmanager
    async def __call__(self, name: str):
        started = perf_counter()
        yield
        if self.timings is not None:
            self.timings[name] = round(perf_counter() - started, 3)


async def build_report(conn: asyncpg.Connection, policy: Policy, period: Period, team: str | None,
                       now: datetime, list_limit: int = DEFAULT_LIST_LIMIT,
                       timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Every section of the report for `period` (and `team`), as of `now`. One repeatable-read
    snapshot of the database, so the sections agree with each other."""
    calendar = report_calendar(policy)
    scope = q.Scope(period.start, period.end, calendar.timezone, team, now)
    timed = _Timer(timings)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # Short analytic queries: compiling them (JIT) costs more than it saves.
        await conn.execute("SET LOCAL jit = off")
        # A month's aggregates of a large store sort and hash in memory, not in temporary files.
        await conn.execute("SET LOCAL work_mem = '64MB'")
        outcomes: Outcomes = defaultdict(list)
        async with timed("clock outcomes"):
            for row in await q.clock_outcomes(conn, _clock_slas(policy), scope):
                outcomes[row["sla"]].append(row)
        async with timed("handoffs"):
            handoffs = await _handoffs(conn, policy, period, scope)
        async with timed("acceptance"):
            acceptance = await _acceptance(conn, policy, scope, list_limit, outcomes)
        async with timed("speed_to_lead"):
            speed = await _speed_to_lead(conn, policy, scope, outcomes)
        attempts = _contact_attempts(policy, outcomes)
        async with timed("rep_volume"):
            reps = await _rep_volume(conn, policy, period, scope)
        async with timed("closed_loop"):
            loop = await _closed_loop(conn, policy, scope, list_limit, outcomes)
        async with timed("volumes"):
            volumes = await _volumes(conn, period, scope)
        async with timed("marketing_feedback"):
            feedback = await _marketing_feedback(conn, scope)
        async with timed("breaches"):
            breaches, corrections = await _breaches_and_corrections(conn, policy, period, scope, list_limit, outcomes)
    return {
        "format_version": FORMAT_VERSION,
        "period": {"kind": period.kind, "label": period.label, "first_day": period.first_day.isoformat(),
                   "days": period.days, "start": _t(period.start), "end": _t(period.end),
                   "timezone": calendar.timezone, "in_progress": period.in_progress(now)},
        "team": team,
        "generated_at": _t(now),
        "policy": {"source": policy.source, "version": policy.version},
        "handoffs": handoffs,
        "acceptance": acceptance,
        "speed_to_lead": speed,
        "contact_attempts": attempts,
        "rep_volume": reps,
        "closed_loop": loop,
        "volumes": volumes,
        "marketing_feedback": feedback,
        "breaches": breaches,
        "corrections": corrections,
    }
