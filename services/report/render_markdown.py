"""The report as Markdown (for a wiki page or an email), from the report data."""
from __future__ import annotations

from typing import Any

from services.report.document import build_document


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: dict[str, Any]) -> str:
    title, header, sections = build_document(data)
    out = [f"# {title}", ""]
    out += [f"{line}  " for line in header]
    for section in sections:
        out += ["", f"## {section.title}", "", f"_{section.agreement}_", ""]
        out += [f"- {label}: **{value}**" for label, value in section.figures]
        for table in section.tables:
            out += ["", f"**{table.title}**", ""]
            if not table.rows:
                out.append("None.")
                continue
            out.append("| " + " | ".join(_cell(c) or " " for c in table.columns) + " |")
            out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|")
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
            if table.note:
                out += ["", f"_{table.note}_"]
    return "\n".join(out) + "\n"
