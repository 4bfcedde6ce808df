"""The report as one self-contained HTML page: tables from the report document, charts drawn by
plotly from the report data, plotly's JavaScript inlined (no network needed: it opens offline and
can be mailed), a print style sheet. The console serves the same page with plotly.js linked from
itself and a navigation bar."""
from __future__ import annotations

import html
import re
from typing import Any

import plotly.graph_objects as go

from services.report.document import Section, Table, build_document

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5rem 2rem; color: #1d232b; }
h1 { margin-top: 1.2rem; } h2 { margin-top: 2rem; border-bottom: 2px solid #dde3ea; padding-bottom: .2rem; }
.agreement { font-style: italic; color: #46505c; }
.figures { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; margin: .6rem 0; padding: 0; list-style: none; }
.figures li { background: #f2f5f8; border-radius: 4px; padding: .3rem .6rem; }
.figures b { font-size: 1.1em; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid #e3e8ee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f7f9fb; }
.note { color: #66707c; font-size: .85rem; }
.chart { height: 340px; margin: .5rem 0 1rem; }
nav { background: #1d2b3a; color: #fff; padding: .5rem 1.5rem; margin: 0 -1.5rem; display: flex; gap: 1rem;
      align-items: center; flex-wrap: wrap; }
nav a { color: #cfe3ff; } nav form { display: inline-flex; gap: .4rem; align-items: center; }
@media print {
  nav, .no-print { display: none; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  section { break-inside: avoid-page; }
  h2 { break-before: auto; break-after: avoid; }
  .chart { height: 260px; break-inside: avoid; }
  table { font-size: 8.5pt; }
}
"""

_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["toImage"]}
CHART_REPS = 20   # reps drawn per chart (the tables list every rep)
COLORS = ["#2f6db5", "#e08a2c", "#3a9a5b", "#c2413b", "#7b5ea7", "#8c6d4f", "#d46fb0", "#7f7f7f"]


def _esc(value: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(value))


def _table(table: Table) -> str:
    if not table.rows:
        return f'<p class="note"><b>{html.escape(table.title)}</b>: none.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return f"<table><caption>{html.escape(table.title)}</caption><thead><tr>{head}</tr></thead>" \
           f"<tbody>{body}</tbody></table>{note}"


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    fig.update_layout(title=title, margin={"l": 50, "r": 20, "t": 40, "b": 40}, colorway=COLORS,
                      legend={"orientation": "h", "y": -0.15}, template="plotly_white", **kwargs)
    return fig


def _charts(data: dict[str, Any]) -> dict[str, list[go.Figure]]:
    """Charts per section; a chart with nothing to draw is left out (its table says "none")."""
    charts: dict[str, list[go.Figure]] = {}
    s = data["handoffs"]
    if any(d["leads"] for d in s["days"]):
        days = [d["day"] for d in s["days"]]
        fig = go.Figure([go.Bar(name="good fit", x=days, y=[d["good_fit"] for d in s["days"]]),
                         go.Bar(name="other fit", x=days, y=[d["leads"] - d["good_fit"] for d in s["days"]])])
        charts["handoffs"] = [_layout(fig, "Leads assigned per day", barmode="stack")]
    for key, title in (("acceptance", "Acceptance attainment per rep"), ("speed_to_lead", "Speed-to-lead attainment per rep")):
        reps = [(f"{rep['owner']} ({team['team']})", rep["attainment"])
                for team in data[key]["attainment"]["teams"] for rep in team["reps"] if rep["attainment"] is not None]
        if len(reps) > CHART_REPS:  # the reps furthest from the agreement; the table has them all
            reps = sorted(reps, key=lambda r: (r[1], r[0]))[:CHART_REPS]
            title += f" (the {CHART_REPS} lowest)"
        if reps:
            fig = go.Figure(go.Bar(x=[r[0] for r in reps], y=[r[1] for r in reps], marker_color=COLORS[0]))
            charts[key] = [_layout(fig, title, yaxis={"tickformat": ".0%", "range": [0, 1.05]})]
    s = data["contact_attempts"]
    if s["segments"]:
        segs = [str(g["segment"]) for g in s["segments"]]
        fig = go.Figure([go.Bar(name=outcome, x=segs, y=[g[outcome] for g in s["segments"]])
                         for outcome in ("met", "breached", "cancelled", "open")])
        charts["contact_attempts"] = [_layout(fig, "Contact-attempt clocks per segment", barmode="stack")]
    s = data["rep_volume"]
    if s["reps"]:
        reps = sorted(s["reps"], key=lambda r: (r["leads"], r["owner"]))[:CHART_REPS]
        behind = f", the {CHART_REPS} with the fewest" if len(s["reps"]) > CHART_REPS else ""
        fig = go.Figure([go.Scatter(name=r["owner"], x=[d["day"] for d in r["days"]],
                                    y=[d["cumulative"] for d in r["days"]], mode="lines+markers",
                                    line={"shape": "hv"}) for r in reps])
        if s["even_pace_per_day"] is not None:
            first = s["month"] + "-01"
            fig.add_trace(go.Scatter(name="even pace", x=[first, s["through_day"]],
                                     y=[s["even_pace_per_day"], s["even_pace_to_date"]], mode="lines",
                                     line={"dash": "dash", "color": "#555"}))
        charts["rep_volume"] = [_layout(fig, f"Leads per rep in {s['month']}{behind}, cumulative, against an even pace")]
    s = data["closed_loop"]
    if s["by_channel"]:
        channels = [str(c["channel"]) for c in s["by_channel"]]
        fig = go.Figure([go.Bar(name=k, x=channels, y=[c[k] for c in s["by_channel"]])
                         for k in ("opportunities", "won", "lost")])
        charts["closed_loop"] = [_layout(fig, "Opportunities, won and lost by channel", barmode="group")]
        if any(c["revenue"] for c in s["by_campaign"]):
            fig = go.Figure(go.Bar(x=[str(c["campaign"]) for c in s["by_campaign"]],
                                   y=[c["revenue"] for c in s["by_campaign"]], marker_color=COLORS[2]))
            charts["closed_loop"].append(_layout(fig, "Revenue by campaign"))
    s = data["volumes"]
    if any(s["total"].values()):
        days = [d["day"] for d in s["days"]]
        fig = go.Figure([go.Bar(name=stage, x=days, y=[d[stage] for d in s["days"]]) for stage in s["stages"]])
        charts["volumes"] = [_layout(fig, "Leads entering each stage per day", barmode="group")]
    s = data["marketing_feedback"]
    if s["rejections"]["by_reason"]:
        fig = go.Figure(go.Bar(x=[str(r["reason"]) for r in s["rejections"]["by_reason"]],
                               y=[r["count"] for r in s["rejections"]["by_reason"]], marker_color=COLORS[3]))
        charts["marketing_feedback"] = [_layout(fig, "Rejection reasons")]
    if s["content"]:
        assets = [str(c["asset"]) for c in s["content"]]
        fig = go.Figure([go.Bar(name="downloads", x=assets, y=[c["downloads"] for c in s["content"]]),
                         go.Bar(name="helpful", x=assets, y=[c["helpful"] for c in s["content"]]),
                         go.Bar(name="became SQL", x=assets, y=[c["became_sql"] for c in s["content"]])])
        charts.setdefault("marketing_feedback", []).append(_layout(fig, "Content: downloads, helpful, SQL", barmode="group"))
    return charts


def _section(section: Section, figures: list[go.Figure], index: int) -> str:
    facts = "".join(f"<li>{html.escape(label)}: <b>{html.escape(value)}</b></li>" for label, value in section.figures)
    charts = "".join(
        f'<div class="chart">{fig.to_html(full_html=False, include_plotlyjs=False, config=_CONFIG, div_id=f"chart-{section.key}-{n}", default_height="100%")}</div>'
        for n, fig in enumerate(figures))
    tables = "".join(_table(t) for t in section.tables)
    return f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>' \
           f'<p class="agreement">{_esc(section.agreement)}</p><ul class="figures">{facts}</ul>{charts}{tables}</section>'


def render_html(data: dict[str, Any], plotly_src: str | None = None, nav: str = "") -> str:
    """The page. `plotly_src`: a URL to load plotly.js from (the console); None inlines it."""
    title, header, sections = build_document(data)
    charts = _charts(data)
    if plotly_src is None:
        from plotly.offline import get_plotlyjs

        script = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    else:
        script = f'<script src="{html.escape(plotly_src)}"></script>'
    body = "".join(_section(s, charts.get(s.key, []), i) for i, s in enumerate(sections))
    head_lines = "".join(f"<p>{html.escape(line)}</p>" for line in header)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><style>{CSS}</style>{script}</head>'
            f'<body>{nav}<h1>{html.escape(title)}</h1>{head_lines}{body}</body></html>\n')
