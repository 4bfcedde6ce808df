"""The report data laid out for reading: sections of headline figures and tables of formatted
cells, the same for the terminal, Markdown and HTML (each renderer only draws this). Charts are
the HTML renderer's own, drawn from the same data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.timefmt import duration_text


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Section:
    key: str            # the data's key (and the HTML anchor)
    title: str
    agreement: str      # the agreement it measures, with the SLA's name
    figures: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def num(value: float | int | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def dur(seconds: float | None) -> str:
    return "–" if seconds is None else duration_text(seconds)


def text(value: Any) -> str:
    return "–" if value is None else str(value)


def yes_no(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def _agreement(a: dict[str, Any]) -> str:
    sla = f" (SLA `{a['sla']}`" if a.get("sla") else " ("
    sep = ", " if a.get("sla") else ""
    return f"{a['text']}{sla}{sep}owner {a['owner']}, seed {a['seed']})"


def _outcome_row(label: list[str], o: dict[str, Any]) -> list[str]:
    return [*label, num(o["clocks"]), num(o["met"]), num(o["breached"]), num(o["cancelled"]), num(o["open"]),
            num(o["corrected"]), pct(o["attainment"])]


_OUTCOME_COLUMNS = ["clocks", "met", "breached", "cancelled", "open", "corrected", "attainment"]


def _attainment_table(title: str, attainment: dict[str, Any]) -> Table:
    rows = [_outcome_row(["all", ""], attainment["total"])]
    for team in attainment["teams"]:
        rows.append(_outcome_row([text(team["team"]), ""], team))
        rows += [_outcome_row(["", text(rep["owner"])], rep) for rep in team["reps"]]
    return Table(title, ["team", "rep", *_OUTCOME_COLUMNS], rows)


def _clock_rows(clocks: list[dict[str, Any]], extra: bool = False) -> list[list[str]]:
    rows = []
    for c in clocks:
        row = [c["sla"], c["lead_id"], text(c["owner"]), text(c["team"]), c["outcome"], text(c["started_at"]),
               text(c["due_at"]), text(c["stopped_at"])]
        if extra:
            row.append("overdue" if c.get("overdue") else "")
        rows.append(row)
    return rows


_CLOCK_COLUMNS = ["sla", "lead", "owner", "team", "outcome", "started (UTC)", "due (UTC)", "stopped (UTC)"]


def _listed(total: int, listed: int) -> str:
    return f"{listed} of {total} listed; --list-limit or --format json for more" if total > listed else ""


def build_document(data: dict[str, Any]) -> tuple[str, list[str], list[Section]]:
    """(title, lines under the title, sections)."""
    p = data["period"]
    title = f"SLA report {p['label']}" + (f", team {data['team']}" if data["team"] else "")
    header = [
        f"{p['kind'].capitalize()} {p['label']}: {p['start']} to {p['end']} ({p['timezone']} calendar)"
        + (" - in progress" if p["in_progress"] else ""),
        f"As of {data['generated_at']}; policy {data['policy']['source']} (version {data['policy']['version']}).",
        "Every clock counts in the period in which it started; attainment = met / (met + breached).",
    ]
    sections: list[Section] = []

    s = data["handoffs"]
    sections.append(Section(
        "handoffs", "S1 Handoffs: leads assigned per week", _agreement(s["agreement"]),
        [("leads assigned", num(s["total"]["leads"])), ("good fit", num(s["total"]["good_fit"])),
         ("good-fit share", pct(s["total"]["fit_share"])), ("target per week", f"{num(s['target'])} leads, "
                                                              f"{pct(s['min_fit_share'])} {s['fit']}")],
        [Table("Weeks (the weeks that start in the period)", ["week", "leads", "good fit", "share", "target", "met",
                                                               "monitor"],
               [[w["week"], num(w["leads"]), num(w["good_fit"]), pct(w["fit_share"]), num(w["target"]),
                 yes_no(w["met"]), "–" if w["monitor"] is None else w["monitor"]["outcome"]] for w in s["weeks"]],
               "monitor: the SLA monitor's outcome for the week (company-wide)" if s["company_wide_outcome"] else ""),
         Table("Per day", ["day", "leads", "good fit"],
               [[d["day"], num(d["leads"]), num(d["good_fit"])] for d in s["days"]])]))

    s = data["acceptance"]
    sections.append(Section(
        "acceptance", "S2 Acceptance by the deadline", _agreement(s["agreement"]),
        [("attainment", pct(s["attainment"]["total"]["attainment"])),
         ("open, due within the next business day", num(len(s["due_soon"]["clocks"])))],
        [_attainment_table("Attainment per team and rep", s["attainment"]),
         Table(f"Open acceptances due before {s['due_soon']['horizon']} (as of {s['due_soon']['as_of']})",
               [*_CLOCK_COLUMNS, ""], _clock_rows(s["due_soon"]["clocks"], extra=True))]))

    s = data["speed_to_lead"]
    fc = s["first_contact"]
    sections.append(Section(
        "speed_to_lead", "S3 Speed to lead", _agreement(s["agreement"]),
        [("attainment", pct(s["attainment"]["total"]["attainment"])),
         (f"{fc['channel']} leads contacted", num(fc["contacted"])),
         ("median business time to first contact", dur(fc["median_business_seconds"])),
         ("90th percentile", dur(fc["p90_business_seconds"]))],
        [_attainment_table("Attainment per team and rep (the rep who made the first contact)", s["attainment"])]))

    s = data["contact_attempts"]
    sections.append(Section(
        "contact_attempts", "S4 Contact attempts before giving up", _agreement(s["agreement"]),
        [("required (default)", num(s["required"]))],
        [Table("Per segment", ["segment", "required", "clocks", "met", "breached", "cancelled", "open",
                               "attainment", "avg attempts when decided"],
               [[text(g["segment"]), num(g["required"]), num(g["clocks"]), num(g["met"]), num(g["breached"]),
                 num(g["cancelled"]), num(g["open"]), pct(g["attainment"]), num(g["attempts_when_decided"])]
                for g in s["segments"]])]))

    s = data["rep_volume"]
    sections.append(Section(
        "rep_volume", f"S5 Rep volume in {s['month']}", _agreement(s["agreement"]),
        [("target per rep", num(s["target"])), ("through", f"{s['through_day']} ({s['days_elapsed']} of "
                                                           f"{s['month_days']} days)"),
         ("even pace to date", num(s["even_pace_to_date"]))],
        [Table("Per rep", ["rep", "team", "leads", "target", "attainment", "even pace", "on pace", "monitor"],
               [[r["owner"], text(r["team"]), num(r["leads"]), num(r["target"]), pct(r["attainment"]),
                 num(r["even_pace_to_date"]), yes_no(r["on_pace"]), text(r["monitor_outcome"])] for r in s["reps"]])]))

    s = data["closed_loop"]
    sections.append(Section(
        "closed_loop", "S6 Closed loop", _agreement(s["agreement"]),
        [("opportunities", num(s["opportunities"])), ("pipeline amount", num(s["pipeline_amount"])),
         ("won", num(s["won"])), ("lost", num(s["lost"])), ("revenue", num(s["revenue"])),
         ("win rate", pct(s["win_rate"])), ("feedback attainment", pct(s["attainment"]["total"]["attainment"])),
         ("waiting for feedback past due", num(len(s["waiting_past_due"]["clocks"])))],
        [Table("By channel", ["channel", "opportunities", "won", "lost", "revenue"],
               [[text(c["channel"]), num(c["opportunities"]), num(c["won"]), num(c["lost"]), num(c["revenue"])]
                for c in s["by_channel"]]),
         Table("By campaign", ["campaign", "opportunities", "won", "lost", "revenue"],
               [[text(c["campaign"]), num(c["opportunities"]), num(c["won"]), num(c["lost"]), num(c["revenue"])]
                for c in s["by_campaign"]]),
         Table(f"Opportunities waiting for feedback past the due time (as of {s['waiting_past_due']['as_of']})",
               _CLOCK_COLUMNS, _clock_rows(s["waiting_past_due"]["clocks"]))]))

    s = data["volumes"]
    stages = s["stages"]
    conv = s["conversion"]
    conv_rows = []
    for name, c in (("MQL -> SQL", conv["mql_to_sql"]), ("lead -> customer", conv["lead_to_customer"])):
        conv_rows.append([name, "all", num(c["total"]["leads"]), num(c["total"]["converted"]), pct(c["total"]["rate"])])
        conv_rows += [[name, f"channel {text(x['channel'])}", num(x["leads"]), num(x["converted"]), pct(x["rate"])]
                      for x in c["by_channel"]]
        conv_rows += [[name, f"segment {text(x['segment'])}", num(x["leads"]), num(x["converted"]), pct(x["rate"])]
                      for x in c["by_segment"]]
    sections.append(Section(
        "volumes", "S7 Volumes and conversion", _agreement(s["agreement"]),
        [(f"entered {stage}", num(s["total"][stage])) for stage in stages]
        + [("MQL -> SQL", pct(conv["mql_to_sql"]["total"]["rate"])),
           ("lead -> customer", pct(conv["lead_to_customer"]["total"]["rate"]))],
        [Table("Leads entering each stage per day", ["day", *stages],
               [[d["day"], *(num(d[x]) for x in stages)] for d in s["days"]]),
         Table("Per week", ["week", *stages], [[w["week"], *(num(w[x]) for x in stages)] for w in s["weeks"]]),
         Table(f"Conversion of the period's cohort (as of {conv['as_of']})",
               ["conversion", "group", "leads", "converted", "rate"], conv_rows)]))

    s = data["marketing_feedback"]
    rj = s["rejections"]
    sections.append(Section(
        "marketing_feedback", "S8 Marketing's feedback", _agreement(s["agreement"]),
        [("rejections", num(rj["total"])), ("assets downloaded", num(len(s["content"])))],
        [Table("Rejection reasons", ["reason", "count", "share"],
               [[text(r["reason"]), num(r["count"]), pct(r["share"])] for r in rj["by_reason"]]),
         Table("Rejections by channel", ["reason", "channel", "count"],
               [[text(r["reason"]), text(r["channel"]), num(r["count"])] for r in rj["by_channel"]]),
         Table("Rejections by campaign", ["reason", "campaign", "count"],
               [[text(r["reason"]), text(r["campaign"]), num(r["count"])] for r in rj["by_campaign"]]),
         Table("Content", ["asset", "downloads", "leads", "rated", "helpful", "helpful share", "became SQL",
                           "asset -> SQL"],
               [[text(c["asset"]), num(c["downloads"]), num(c["leads"]), num(c["rated"]), num(c["helpful"]),
                 pct(c["helpful_share"]), num(c["became_sql"]), pct(c["sql_rate"])] for c in s["content"]])]))

    b, c = data["breaches"], data["corrections"]
    listed = b["clocks"]["listed"]
    sections.append(Section(
        "breaches", "Breaches and corrections", "Every clock of the period that was breached or corrected, "
        "and every volume window judged breached, with lead ids.",
        [("breached clocks", num(b["clocks"]["total"])), ("corrections", num(c["total"])),
         ("breached windows", num(len(b["windows"])))]
        + [(f"breached {sla}", num(n)) for sla, n in b["clocks"]["by_sla"].items()],
        [Table("Breached clocks", _CLOCK_COLUMNS, _clock_rows(listed), _listed(b["clocks"]["total"], len(listed))),
         Table("Breached windows", ["sla", "owner", "window start", "count", "target"],
               [[w["sla"], text(w["owner"]), w["window_start"], num(w["count"]), num(w["target"])] for w in b["windows"]]),
         Table("Corrections (breach corrected by a late event)", _CLOCK_COLUMNS, _clock_rows(c["listed"]),
               _listed(c["total"], len(c["listed"]))),
         Table("Windows judged again and corrected by a late lead", ["sla", "owner", "window start", "outcome",
                                                                      "count", "target"],
               [[w["sla"], text(w["owner"]), w["window_start"], w["outcome"], num(w["count"]), num(w["target"])]
                for w in c["windows"]])]))
    return title, header, sections
