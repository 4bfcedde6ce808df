"""One entry point for every format; each renderer reads only the report data (model.py)."""
from __future__ import annotations

import json
from typing import Any


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "text":
        from services.report.render_text import render_text

        return render_text(data)
    if fmt == "md":
        from services.report.render_markdown import render_markdown

        return render_markdown(data)
    if fmt == "html":
        from services.report.render_html import render_html

        return render_html(data)
    raise ValueError(f"unknown report format {fmt!r}")
