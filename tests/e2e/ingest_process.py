"""`python -m services.ingest` as its own process, exactly as deployed, for the end-to-end tests
that attack it over HTTP: started on a free port, waited for until /readyz says ready, stopped
with SIGTERM (SIGKILL if it hangs)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import requests

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_ingest(env: dict[str, str], port: int, log_path: Path,
                   ready_timeout: float = 60) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL, process); `env` is added to this process's environment."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.ingest"], cwd=REPO, env={**os.environ, **env},
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            assert proc.poll() is None, f"ingest exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"ingest not ready:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
