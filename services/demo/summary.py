"""What the month came to, read back from the pipeline: counts from PostgreSQL (services/readside,
the same queries `leadflow report` is held to) and the leadflow alerts Prometheus has firing."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import aiohttp

from services.common.config import Settings
from services.common.postgres import connect
from services.demo.policy import campaign_bounds
from services.common.db_roles import READER
from services.readside import queries
from services.simulator import SimulatedMonth


async def month_counts(settings: Settings, month: SimulatedMonth, now: datetime, campaign_sla: str) -> dict[str, Any]:
    """Every count of the summary, from the event store and the SLA monitor's tables."""
    conn = await connect(settings, role=READER)  # the read side reads as the read-only role
    try:
        start, end = month.month_start, month.month_end
        outcomes = await queries.clock_outcomes(conn, start, end)
        span = campaign_bounds(month)
        return {
            "as_of": now,
            "funnel": await queries.funnel(conn, start, end),
            "mql_to_sql": await queries.mql_to_sql(conn, start, end, now),
            "slas": queries.attainment_rows(outcomes),
            "windows": await queries.windows(conn, start, end),
            "teams": await queries.attainment_by(conn, start, end, "team"),
            "reps": await queries.attainment_by(conn, start, end, "owner"),
            "worst_breaches": await queries.worst_breaches(conn, start, end, now),
            "corrections": await queries.corrections(conn, start, end),
            "campaign": {**month.conference, "sla": campaign_sla, "span": {"start": span[0], "end": span[1]},
                         "meetings_booked": await queries.campaign_meetings(conn, month.conference["campaign"], *span),
                         "judged": await queries.window_outcomes(conn, campaign_sla)},
        }
    finally:
        await conn.close()


async def leadflow_alerts(settings: Settings) -> list[dict[str, Any]]:
    """The leadflow alerts Prometheus evaluates as pending or firing (GET /api/v1/alerts)."""
    url = f"http://127.0.0.1:{settings.ports.prometheus}/api/v1/alerts"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url) as resp:
            body = await resp.json()
    alerts = []
    for alert in body.get("data", {}).get("alerts", []):
        labels = alert.get("labels", {})
        if labels.get("alertname", "").startswith("Leadflow"):
            alerts.append({"alertname": labels["alertname"], "state": alert.get("state"),
                           "severity": labels.get("severity"), "sla": labels.get("sla"), "team": labels.get("team"),
                           "summary": alert.get("annotations", {}).get("summary"), "active_at": alert.get("activeAt")})
    return sorted(alerts, key=lambda a: (a["state"] != "firing", a["alertname"], a["sla"] or "", a["team"] or ""))


async def wait_for_alerts(settings: Settings, timeout: float, on_wait=lambda seconds: None) -> list[dict[str, Any]]:
    """Prometheus scrapes every 5 s and evaluates the rules every 5 s: wait until a leadflow alert
    fires (at most `timeout` s), then give all pending and firing ones."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        alerts = await leadflow_alerts(settings)
        if any(a["state"] == "firing" for a in alerts) or time.monotonic() > deadline:
            return alerts
        on_wait(time.monotonic() - started)
        await asyncio.sleep(1.0)


def where_next(settings: Settings, month: SimulatedMonth, sample_lead: str | None) -> dict[str, str]:
    p = settings.ports
    out = {
        "report": f"leadflow report --month {month.month} --format html --out report.html",
        "console": "leadflow console   (then http://127.0.0.1:8090)",
        "lead": f"leadflow lead {sample_lead}" if sample_lead else "leadflow lead LEAD_ID",
        "funnel": f"leadflow funnel --as-of {month.month_end.strftime('%Y-%m-%dT%H:%M:%SZ')} --by channel",
        "prometheus": f"http://127.0.0.1:{p.prometheus}/alerts",
        "alertmanager": f"http://127.0.0.1:{p.alertmanager}",
        "stop": "make down",
    }
    return out
