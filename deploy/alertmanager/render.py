"""Render deploy/alertmanager/alertmanager.yml with the real webhook URLs.

Alertmanager 0.25 (the version the stack runs) has no ``url_file`` for webhook receivers and
does not expand environment variables in its configuration. The committed configuration
therefore carries loopback placeholder URLs, each on a line marked with the name of the
environment variable that replaces it::

    - url: "http://127.0.0.1:19095/leadflow/oncall"   # LEADFLOW_ONCALL_WEBHOOK_URL

The stack starter calls this (as a function or as a script) and points Alertmanager at the
rendered copy in its data dir::

    python deploy/alertmanager/render.py --out "$DATA_DIR/alertmanager/alertmanager.yml"

The copy is written with mode 0600 because webhook URLs often carry a token. The URLs are
never printed. An unset variable keeps the placeholder (a warning names the variable).

Standard library only, so the stack starter needs nothing beyond the project's runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

TEMPLATE = Path(__file__).resolve().with_name("alertmanager.yml")
ENV_VARS = ("LEADFLOW_ONCALL_WEBHOOK_URL", "LEADFLOW_TICKET_WEBHOOK_URL")


class RenderError(ValueError):
    """A webhook URL that cannot go into the configuration."""


def _marker_re(var: str) -> re.Pattern[str]:
    # the `url: "..."` line that ends with `# VAR`
    return re.compile(
        r'^(?P<head>\s*-?\s*url:\s*)"[^"\n]*"(?P<tail>\s*#\s*' + re.escape(var) + r"\s*)$",
        re.MULTILINE,
    )


def check_url(var: str, url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL; raise RenderError naming ``var`` (never the URL)."""
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise RenderError(f"{var}: the URL contains whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RenderError(f"{var}: expected an absolute http:// or https:// URL")
    return url


def render(template: str, urls: Mapping[str, str | None]) -> str:
    """Replace the marked placeholder URL of each variable in ``urls`` that is not None."""
    out = template
    for var in ENV_VARS:
        pattern = _marker_re(var)
        if len(pattern.findall(out)) != 1:
            raise RenderError(f"{var}: expected exactly one marked url line in the template")
        url = urls.get(var)
        if url is None:
            continue
        quoted = json.dumps(check_url(var, url))  # a JSON string is a YAML double-quoted scalar
        out = pattern.sub(lambda m: m.group("head") + quoted + m.group("tail"), out)
    return out


def write(out: Path | str, env: Mapping[str, str] | None = None, template: Path | str = TEMPLATE) -> Path:
    """Render the template with the URLs from ``env`` (default: os.environ) into ``out`` (mode 0600)."""
    env = os.environ if env is None else env
    urls = {var: (env.get(var) or None) for var in ENV_VARS}
    for var, url in urls.items():
        if url is None:
            print(f"render.py: {var} is not set; keeping the placeholder URL", file=sys.stderr)
    text = render(Path(template).read_text(encoding="utf-8"), urls)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".alertmanager.", suffix=".yml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write the rendered alertmanager.yml")
    parser.add_argument("--template", default=str(TEMPLATE), help="the committed alertmanager.yml")
    args = parser.parse_args(argv)
    try:
        path = write(args.out, template=args.template)
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
