"""The shell commands the documentation shows, extracted so a test can run them.

The rule: every fenced ```sh block of README.md and docs/*.md is one bash script. A block is not
run only when the line before its fence is `<!-- docs-test: skip: REASON -->` (invisible in the
rendered page); the reason is required. Everything else runs for real, see run_block()."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip:\s*(\S.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    document: str
    line: int           # 1-based line of the opening fence
    script: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def blocks(documents: list[Path] = DOCUMENTS) -> list[Block]:
    found: list[Block] = []
    for path in documents:
        lines = path.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            if lines[index].strip() == "```sh":
                start = index
                end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
                previous = lines[start - 1].strip() if start else ""
                match = SKIP.match(previous)
                found.append(Block(str(path.relative_to(REPO)), start + 1, "\n".join(lines[start + 1:end]) + "\n",
                                   match.group(1) if match else None))
                index = end
            index += 1
    return found
