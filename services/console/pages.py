"""The console's HTML pages other than the report (which is the report's own HTML): navigation
with the period picker, the lead page and the "at risk" page. Pure: data and `now` in, HTML out."""
from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any, Sequence
from urllib.parse import urlencode

import plotly.graph_objects as go

from services.common.timefmt import duration_text, format_utc
from services.report.render_html import _CONFIG, CSS, _layout

# Fields of lead.created's payload that identify a person: shown on the lead page, nowhere else.
PERSONAL_FIELDS = ("email", "company", "country", "name", "first_name", "last_name", "phone")


def _e(value: Any) -> str:
    return "–" if value is None else html.escape(str(value))


def _t(value: datetime | None) -> str:
    return "–" if value is None else format_utc(value)


def nav(week: str, month: str, team: str | None) -> str:
    team_value = html.escape(team or "")
    return (
        '<nav class="no-print"><b>leadflow console</b>'
        f'<a href="/report?week={html.escape(week)}">this week</a>'
        f'<a href="/report?month={html.escape(month)}">this month</a><a href="/at-risk">at risk</a>'
        f'<form action="/report" method="get"><input type="week" name="week" value="{html.escape(week)}" '
        f'aria-label="week"><input name="team" placeholder="team" value="{team_value}" size="8" aria-label="team">'
        '<button>week report</button></form>'
        f'<form action="/report" method="get"><input type="month" name="month" value="{html.escape(month)}" '
        f'aria-label="month"><input name="team" placeholder="team" value="{team_value}" size="8" aria-label="team">'
        '<button>month report</button></form>'
        '<form action="/lead" method="get"><input name="id" placeholder="lead id" size="12" aria-label="lead id">'
        '<button>lead</button></form></nav>'
    )


def _page(title: str, nav_html: str, body: str, head: str = "", with_plotly: bool = False) -> str:
    script = '<script src="/static/plotly.min.js"></script>' if with_plotly else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">{head}<style>{CSS}</style>'
            f'{script}</head><body>{nav_html}<h1>{html.escape(title)}</h1>{body}</body></html>\n')


def _table(caption: str, columns: Sequence[str], rows: Sequence[Sequence[str]], raw: bool = False) -> str:
    """Cells are escaped unless `raw` (then the caller escaped them)."""
    if not rows:
        return f'<p class="note"><b>{html.escape(caption)}</b>: none.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart(fig: go.Figure, div_id: str) -> str:
    return f'<div class="chart">{fig.to_html(full_html=False, include_plotlyjs=False, config=_CONFIG, div_id=div_id, default_height="100%")}</div>'


def lead_page(lead_id: str, report: dict[str, Any], clocks: Sequence[Any], now: datetime, nav_html: str) -> str:
    lead = report["lead"] or {}
    created = next((e for e in report["events"] if e["type"] == "lead.created"), None)
    personal = {k: created["payload"][k] for k in PERSONAL_FIELDS if created and k in created["payload"]}
    facts = [("stage", lead.get("stage")), ("owner", lead.get("owner")), ("team", lead.get("team")),
             ("channel", lead.get("channel")), ("segment", lead.get("segment")), ("fit", lead.get("fit")),
             ("campaign", created["payload"].get("campaign") if created else None),
             ("created", _t(lead.get("created_at"))), *personal.items()]
    body = '<ul class="figures">' + "".join(f"<li>{_e(k)}: <b>{_e(v)}</b></li>" for k, v in facts) + "</ul>"
    stages = report["stages"]
    timed = [s for s in stages if s["seconds"] is not None]
    if timed:
        fig = go.Figure(go.Bar(y=[f"{s['stage']} (v{s['version']})" for s in timed],
                               x=[s["seconds"] / 3600 for s in timed], orientation="h"))
        body += _chart(_layout(fig, "Hours in each stage", xaxis={"title": "hours"}), "chart-lead-stages")
    body += _table("Time in each stage", ["stage", "entered (UTC)", "left (UTC)", "time in stage", "by"],
                   [[s["stage"], _t(s["entered_at"]), _t(s["left_at"]) if s["left_at"] else "(current)",
                     duration_text(s["seconds"]) if s["seconds"] is not None else duration_text((now - s["entered_at"]).total_seconds()) + " so far",
                     f"v{s['version']} {s['event_type']}"] for s in stages])
    body += _table("SLA clocks", ["sla", "outcome", "started (UTC)", "due (UTC)", "stopped (UTC)", "corrected",
                                  "attempts", "owner", "team"],
                   [[c["sla"], c["outcome"] or "open", _t(c["started_at"]), _t(c["due_at"]), _t(c["stopped_at"]),
                     "yes" if c["corrected"] else "", "" if c["required"] is None else f"{c['attempts']}/{c['required']}",
                     c["owner"] or "–", c["team"] or "–"] for c in clocks])
    body += _table("Events (log order)", ["v", "occurred (UTC)", "type", "stage", "ignored", "owner", "team", "source",
                                          "payload"],
                   [[str(e["version"]), _t(e["occurred_at"]), e["type"],
                     e["to"] if e["from"] == e["to"] else f"{e['from'] or '∅'} → {e['to']}", e["ignored"] or "",
                     e["owner"] or "", e["team"] or "", e["source"],
                     json.dumps(e["payload"], ensure_ascii=False, sort_keys=True)] for e in report["events"]])
    return _page(f"Lead {lead_id}", nav_html, body, with_plotly=bool(timed))


def at_risk_page(clocks: Sequence[Any], now: datetime, team: str | None, owner: str | None, refresh_s: int,
                 nav_html: str) -> str:
    scope = ", ".join(f"{k} {v}" for k, v in (("team", team), ("owner", owner)) if v) or "all teams"
    groups: dict[tuple[str, str], list[Any]] = {}
    for c in clocks:
        groups.setdefault((c["team"] or "–", c["owner"] or "–"), []).append(c)
    summary = []
    for (t, o), items in sorted(groups.items()):
        overdue = sum(1 for c in items if c["due_at"] < now)
        link = f'<a href="/at-risk?{html.escape(urlencode({"team": t, "owner": o}))}">{html.escape(o)}</a>' \
            if t != "–" and o != "–" else html.escape(o)
        summary.append([html.escape(t), link, str(len(items)), str(overdue),
                        html.escape(duration_text(min((c["due_at"] - now).total_seconds() for c in items)))])
    body = (f'<p>Open clocks ({html.escape(scope)}) ordered by time left, as of {_t(now)}; this page refreshes '
            f'every {refresh_s} s. Overdue clocks are past their due time and not yet declared breached.</p>')
    with_chart = bool(clocks)
    if with_chart:
        teams = sorted({t for t, _ in groups})
        slas = sorted({c["sla"] for c in clocks})
        fig = go.Figure([go.Bar(name=sla, x=teams, y=[sum(1 for c in clocks if (c["team"] or "–") == t and c["sla"] == sla)
                                                      for t in teams]) for sla in slas])
        body += _chart(_layout(fig, "Open clocks per team", barmode="stack"), "chart-at-risk")
    body += _table("Per team and owner", ["team", "owner", "open", "overdue", "least time left"], summary, raw=True)
    rows = []
    for c in clocks:
        left = (c["due_at"] - now).total_seconds()
        lead_link = f'<a href="/lead?{html.escape(urlencode({"id": c["lead_id"]}))}">{html.escape(c["lead_id"])}</a>'
        rows.append([html.escape(duration_text(left)) + (" overdue" if left < 0 else ""), html.escape(c["sla"]),
                     lead_link, _e(c["owner"]), _e(c["team"]), _t(c["started_at"]), _t(c["due_at"])])
    body += _table("Open clocks by time left", ["time left", "sla", "lead", "owner", "team", "started (UTC)", "due (UTC)"],
                   rows, raw=True)
    return _page("Clocks at risk", nav_html, body, head=f'<meta http-equiv="refresh" content="{refresh_s}">',
                 with_plotly=with_chart)
