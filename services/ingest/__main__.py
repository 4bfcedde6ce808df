"""`python -m services.ingest`: run the ingest service (HTTP API + leadflow.inbound consumer)
with settings from the environment. `leadflow ingest` does the same."""
from __future__ import annotations

import sys

from services.ingest.commands import run_service

if __name__ == "__main__":
    sys.exit(run_service())
