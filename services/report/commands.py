"""`leadflow report`: the weekly meeting's and the monthly SLA review's report, from PostgreSQL.

Parses and checks the options (a user mistake is one line and exit status 2), builds the report
data (services/report/model.py) and renders it (services/report/render.py)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import click

from services.common.timefmt import parse_rfc3339

FORMATS = ("text", "md", "json", "html")


class BadInput(click.ClickException):
    """A user mistake: printed as one line, exit status 2 (as click's usage errors)."""

    exit_code = 2


def parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise BadInput(f"--now {value!r} {exc}") from None


def load_report_policy(path: str | None):
    from services.sla_monitor.domain import PolicyError, load_policy

    try:
        return load_policy(path or None)
    except PolicyError as exc:
        raise BadInput(f"--policy: {exc}") from None


async def produce(settings, policy, week: str | None, month: str | None, team: str | None, now: datetime,
                  list_limit: int) -> dict:
    """The report data, or BadInput naming what is wrong with the period or team."""
    from services.report.request import ReportRequestError, parse_period, report_for
    from services.report.store import open_connection

    try:
        parse_period(policy, week, month, now)   # before connecting: a typo needs no database
    except ReportRequestError as exc:
        raise BadInput(str(exc)) from None
    try:
        conn = await open_connection(settings)
    except Exception as exc:  # asyncpg and OSError alike: the message says enough
        raise click.ClickException(f"cannot reach PostgreSQL ({type(exc).__name__}: {exc}); is the stack up?") from None
    try:
        return await report_for(conn, policy, week, month, team, now, list_limit)
    except ReportRequestError as exc:
        raise BadInput(str(exc)) from None
    finally:
        await conn.close()


@click.command("report")
@click.option("--week", metavar="YYYY-Www", help="ISO week, e.g. 2026-W46 (the weekly marketing-sales meeting).")
@click.option("--month", metavar="YYYY-MM", help="Calendar month, e.g. 2026-11 (the monthly SLA review).")
@click.option("--team", metavar="TEAM", help="Only this sales team's leads and clocks.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text (terminal), md (Markdown), json (the data), html (one self-contained file with charts).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--now", "now_text", metavar="RFC3339",
              help="Report as of this time (default: now): open clocks, overdue feedback, conversions to date.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, exists=True),
              help="SLA policy file for the targets (default: LEADFLOW_SLA_POLICY, else the built-in policy).")
@click.option("--list-limit", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="At most this many lead ids per list (breaches, corrections, due soon); totals are exact.")
def report(week, month, team, fmt, out, now_text, policy_path, list_limit) -> None:
    """The SLA review from the event store: handoffs, acceptance, speed to lead, attempts, rep
    volume, closed loop, volumes and conversion, marketing feedback, breaches and corrections.

    Example: leadflow report --week 2026-W46 --format html --out w46.html"""
    from services.common.config import ConfigError, load_settings
    from services.report.render import render

    now = parse_now(now_text)
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    policy = load_report_policy(policy_path or settings.sla_policy_file)
    data = asyncio.run(produce(settings, policy, week, month, team, now, list_limit))
    text = render(data, fmt)
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"--out {out}: cannot write ({exc.strerror or exc})") from None
        click.echo(f"wrote {out} ({fmt}, {len(text.encode()):,} bytes)", err=True)
