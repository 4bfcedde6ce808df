"""The published API document (GET /openapi.json) against the running ingest service, with
schemathesis: property-based requests from the document (valid and invalid events, bodies, headers)
to `python -m services.ingest` on the real Kafka. No response may be a 5xx, and every response
must be one the document declares, with the declared body and headers.

The service runs as its own process, exactly as deployed, in open mode (no API keys) so that
generated valid events reach Kafka and the 202 path (publish + acknowledgements) is exercised.
Auth is covered by tests/unit/ingest/test_http_api.py and the integration tests.

Not checked: `positive_data_acceptance`. Some events valid for the JSON Schema are refused by
design, because the document cannot express the rule (an occurred_at more than 5 minutes ahead, a
February 30, a lone surrogate in an id); the document says so in its descriptions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)

from services.ingest.openapi import build_openapi
from services.stack.process import free_port
from tests.e2e.ingest_process import running_ingest

pytestmark = pytest.mark.stack

MAX_EXAMPLES = 200   # per mode for POST /v1/events; the GETs take no input
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture(scope="module")
def ingest_process(stack, tmp_path_factory):
    """`python -m services.ingest` on a free port, its own topics, until /readyz says ready."""
    port = free_port()
    tag = uuid.uuid4().hex[:10]
    log_path = tmp_path_factory.mktemp("ingest") / "ingest.log"
    env = {
        "LEADFLOW_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "LEADFLOW_TOPIC_PREFIX": f"t-{tag}.",
        "LEADFLOW_TOPIC_PARTITIONS": "3",
        "LEADFLOW_INGEST_HOST": "127.0.0.1",
        "LEADFLOW_INGEST_PORT": str(port),
        "LEADFLOW_INGEST_API_KEYS": "",
        "LEADFLOW_INGEST_HMAC_SECRET": "",
        "LEADFLOW_INSTANCE_ID": f"schemathesis-{tag}",
    }
    with running_ingest(env, port, log_path) as (base, _proc):
        yield base, log_path


@pytest.fixture(scope="module")
def ingest_schema(ingest_process):
    base, _ = ingest_process
    return schemathesis.openapi.from_url(f"{base}/openapi.json", wait_for_schema=30)


# The operations, from the document the service serves (built from code, no I/O at import), with
# the generation modes that apply: an operation without input has no invalid form.
DOCUMENT = build_openapi()
CASES = [
    (path, method.upper(), media, mode)
    for path, item in DOCUMENT["paths"].items() for method, op in item.items()
    for media in (op["requestBody"]["content"] if op.get("requestBody") else [None])
    for mode in ([GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if op.get("requestBody") or op.get("parameters")
                 else [GenerationMode.POSITIVE])
]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_ctx, value):
    """The document gives the schema of one NDJSON line; a generated value is sent as one line."""
    return (json.dumps(value) + "\n").encode("utf-8")


def test_the_served_document_is_the_published_one(ingest_process):
    base, _ = ingest_process
    assert requests.get(f"{base}/openapi.json", timeout=5).json() == DOCUMENT


@pytest.mark.parametrize("path, method, media, mode", CASES,
                         ids=[f"{m} {p} {media or ''} {mode.value}".replace("  ", " ") for p, m, media, mode in CASES])
def test_api_conforms_and_never_answers_5xx(ingest_schema, ingest_process, path, method, media, mode):
    base, _ = ingest_process
    operation = ingest_schema[path][method]
    examples = MAX_EXAMPLES if method == "POST" else 5

    statuses: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=mode, media_type=media))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        statuses.add(case.call_and_validate(base_url=base, checks=CHECKS, timeout=30).status_code)

    run()
    if method == "POST" and mode is GenerationMode.POSITIVE:
        assert 202 in statuses, "no generated event was accepted: the Kafka path was not exercised"


NDJSON_HOOKS = '''
import json
import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_ctx, value):
    return (json.dumps(value) + "\\n").encode("utf-8")
'''


def test_schemathesis_cli_all_phases(ingest_process, tmp_path):
    """The `schemathesis run` command as a user would run it, with its other phases: the
    document's examples, the coverage phase (boundary and missing values for every constraint)
    and fuzzing, with the same checks."""
    base, _ = ingest_process
    (tmp_path / "leadflow_st_hooks.py").write_text(NDJSON_HOOKS)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "leadflow_st_hooks",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/openapi.json",
         "--checks", ",".join(check.__name__ for check in CHECKS),
         "--phases", "examples,coverage,fuzzing", "--max-examples", "50", "--workers", "1",
         "--generation-database", "none", "--no-color", "--request-timeout", "30",
         "--report", "junit", "--report-dir", str(tmp_path / "report")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,   # its cache dir goes there too
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "Coverage" in output and "generated" in output


def test_the_service_logged_no_unhandled_error(ingest_process):
    """After the generated requests (this test runs last in the module): none reached the 500
    handler."""
    base, log_path = ingest_process
    metrics = requests.get(f"{base}/metrics", timeout=5).text
    log = log_path.read_text()
    assert "unhandled error" not in log, log[-3000:]
    assert 'leadflow_errors_total{kind="internal",service="ingest"} 0.0' in metrics
