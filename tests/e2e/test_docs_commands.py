"""Every shell command shown in README.md and docs/*.md runs against a real stack, so the
documentation cannot drift from the product (extraction rule: tests/e2e/docs_commands.py).

How a block runs: as one `bash -euo pipefail` script, in a scratch folder that links the
checkout's `docs/`, `deploy/`, `.venv/` and `.leadflow/` (so relative paths work and anything a
command writes lands in the scratch folder), with `leadflow` on the PATH and the environment of
the demo stack (tests/e2e/demo_stack.py: the stack `leadflow demo --once` filled with last month).
The default addresses of the local stack (ports 8080, 15432, 19090, 19092, 19094) are rewritten
to the test stack's ports. Three shell functions stand in for what a test cannot do for real:
- `leadflow demo|up|down|ingest|lifecycle|sla-monitor|bench|console` run with `--help` (they
  start or stop long-running things; the demo itself is what the stack fixture ran);
- `leadflow lead` is retried for a few seconds (events sent a line before are stored
  asynchronously);
- `make TARGET` is `make -n TARGET` (the target exists and its recipe expands; `make demo` and
  `make test` themselves are what this suite runs).
A block must exit 0. At most a fifth of the blocks may be skipped, each with its reason."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.docs_commands import REPO, blocks

pytestmark = pytest.mark.stack

BLOCKS = blocks()
DEFAULT_PORTS = {"8080": "LEADFLOW_INGEST_PORT", "15432": "LEADFLOW_POSTGRES_PORT", "19090": "LEADFLOW_PROMETHEUS_PORT",
                 "19092": "LEADFLOW_KAFKA_PORT", "19094": "LEADFLOW_ALERTMANAGER_PORT"}
PRELUDE = """
leadflow() {
  case "${1:-}" in
    demo|up|down|ingest|lifecycle|sla-monitor|bench|console) command leadflow "$1" --help > /dev/null ;;
    lead) local i; for i in $(seq 40); do command leadflow "$@" 2>/dev/null && return 0; sleep 0.25; done; command leadflow "$@" ;;
    *) command leadflow "$@" ;;
  esac
}
make() { command make -n -C "$REPO" "$@" > /dev/null; }
"""


def test_most_blocks_run_and_every_skip_says_why():
    skipped = [b for b in BLOCKS if b.skip_reason is not None]
    assert len(BLOCKS) >= 15
    assert len(skipped) * 5 <= len(BLOCKS), [b.id for b in skipped]


def _rewrite_ports(script: str, env: dict[str, str]) -> str:
    for port, variable in DEFAULT_PORTS.items():
        script = script.replace(f"127.0.0.1:{port}", f"127.0.0.1:{env[variable]}").replace(f"-p {port}", f"-p {env[variable]}")
    return script


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs-commands")
    for name in ("docs", "deploy", ".venv", ".leadflow", "schemas"):
        (folder / name).symlink_to(REPO / name)
    return folder


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.skip_reason is None], ids=lambda b: b.id)
def test_documented_commands_run(block, demo_stack, scratch):
    env = {**demo_stack.env, "REPO": str(REPO), "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
           "KEY": "a-key-you-were-given", "LEADFLOW_API_KEY": "dev-mode-accepts-any-key", "COLUMNS": "100",
           # the README's signing example needs a secret; the demo stack's ingest (dev mode) ignores signatures
           "LEADFLOW_INGEST_HMAC_SECRET": "a-shared-secret"}
    script = "set -euo pipefail\n" + PRELUDE + _rewrite_ports(block.script, demo_stack.env)
    result = subprocess.run(["bash", "-c", script], cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (f"{block.id} exited {result.returncode}\n--- script\n{block.script}"
                                    f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
