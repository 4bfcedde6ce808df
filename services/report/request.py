"""A report asked for by a user (the CLI's options, the console's query string): checked, then
built. Every mistake is a ReportRequestError whose message is one line naming what is wrong."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.report.model import DEFAULT_LIST_LIMIT, build_report, report_calendar
from services.report.period import Period, PeriodError, parse_month, parse_week
from services.report.queries import team_known, teams
from services.sla_monitor.domain import Policy


class ReportRequestError(ValueError):
    pass


def parse_period(policy: Policy, week: str | None, month: str | None, now: datetime) -> Period:
    if (week is None) == (month is None):
        raise ReportRequestError("give exactly one of --week YYYY-Www or --month YYYY-MM")
    calendar = report_calendar(policy)
    try:
        return parse_week(week, calendar, now) if week is not None else parse_month(month, calendar, now)  # type: ignore[arg-type]
    except PeriodError as exc:
        raise ReportRequestError(str(exc)) from None


async def check_team(conn: asyncpg.Connection, team: str | None) -> None:
    if team is None:
        return
    if not team.strip():
        raise ReportRequestError("team must not be empty")
    if not await team_known(conn, team):
        known = ", ".join(await teams(conn)) or "none yet"
        raise ReportRequestError(f"team {team!r} is unknown (teams with leads: {known})")


async def report_for(conn: asyncpg.Connection, policy: Policy, week: str | None, month: str | None,
                     team: str | None, now: datetime, list_limit: int = DEFAULT_LIST_LIMIT) -> dict[str, Any]:
    period = parse_period(policy, week, month, now)
    await check_team(conn, team)
    return await build_report(conn, policy, period, team, now, list_limit)
