"""The report for the terminal (rich tables), from the report data."""
from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from services.report.document import build_document

WIDTH = 120


def render_text(data: dict[str, Any], width: int = WIDTH) -> str:
    title, header, sections = build_document(data)
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None, highlight=False)
    console.print(f"[bold]{title}[/bold]")
    for line in header:
        console.print(line)
    for section in sections:
        console.print()
        console.rule(f"[bold]{section.title}[/bold]", align="left")
        console.print(section.agreement, style="italic")
        console.print("  ".join(f"{label}: [bold]{value}[/bold]" for label, value in section.figures))
        for table in section.tables:
            if not table.rows:
                console.print(f"{table.title}: none")
                continue
            rich_table = RichTable(title=table.title, title_justify="left", show_edge=False)
            for index, column in enumerate(table.columns):
                rich_table.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
            for row in table.rows:
                rich_table.add_row(*row)
            console.print(rich_table)
            if table.note:
                console.print(table.note, style="dim")
    return console.export_text()
