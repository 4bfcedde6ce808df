"""The ingest service's metrics, exactly as docs/metrics.md names them. The registry is passed in
(tests use a fresh one). Label values come from bounded sets only: `source` is folded to a known
set, `field` is a contract field path (bounded by the envelope rules), `route` a route template."""
from __future__ import annotations

import re
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.envelope import PAYLOAD_RULES
from services.common.metrics import ConsumerLag

SERVICE = "ingest"
VIAS = ("http", "kafka")
KNOWN_SOURCES = frozenset({
    "website", "hubspot", "marketo", "salesforce", "dialer", "email", "pardot", "eloqua", "pipedrive",
    "zoho", "crm", "webinar", "chat", "import",
})
ERROR_KINDS = ("kafka", "decode", "publish", "internal")
ENVELOPE_FIELDS = ("event_id", "lead_id", "type", "occurred_at", "source", "payload")
KNOWN_FIELDS = frozenset(
    {"json", *ENVELOPE_FIELDS}
    | {f"payload.{name}" for rules in PAYLOAD_RULES.values() for name in rules}
)
_SOURCE_LABEL = re.compile(r"^[a-z0-9._-]{1,64}$")


def field_label(field: str) -> str:
    """The `field` label of a refusal: the contract field, `json` when the value was not a JSON
    object (InvalidEvent's empty field), `other` for anything unexpected."""
    if not field:
        return "json"
    return field if field in KNOWN_FIELDS else "other"


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry, sources: Iterable[str] = ()) -> None:
        self.registry = registry
        self.sources = frozenset(KNOWN_SOURCES | {s.lower()[:64] for s in sources})
        self.accepted = Counter(
            "leadflow_ingest_events_accepted_total", "Valid envelopes published to leadflow.events",
            ["source", "via"], registry=registry,
        )
        self.refused = Counter(
            "leadflow_ingest_events_refused_total", "Invalid envelopes, by the field that was wrong",
            ["source", "via", "field"], registry=registry,
        )
        self.dlq = Counter(
            "leadflow_ingest_dlq_records_total", "Records written to leadflow.dlq, by field",
            ["field"], registry=registry,
        )
        self.request_duration = Histogram(
            "leadflow_ingest_request_duration_seconds", "HTTP request latency",
            ["route", "status"], registry=registry,
        )
        self.lag = ConsumerLag(registry, SERVICE)
        self.records = Counter(
            "leadflow_consumer_records_total", "Records consumed", ["service", "topic"], registry=registry,
        )
        self.errors = Counter(
            "leadflow_errors_total", "Handled errors, by kind", ["service", "kind"], registry=registry,
        )
        # Born at 0, so the first increment is visible to increase() (docs/metrics.md).
        for kind in ERROR_KINDS:
            self.errors.labels(SERVICE, kind)
        for source in sorted(self.sources | {"other"}):
            for via in VIAS:
                self.accepted.labels(source, via)

    def source_label(self, source: object) -> str:
        """Lower case, at most 64 characters, one of the known/configured sources, else `other`;
        `unknown` when the event carried no readable source."""
        if not isinstance(source, str) or not source:
            return "unknown"
        label = source.lower()[:64]
        if label in self.sources and _SOURCE_LABEL.match(label):
            return label
        return "other"

    def count_accepted(self, source: str, via: str, n: int = 1) -> None:
        self.accepted.labels(self.source_label(source), via).inc(n)

    def count_refused(self, source: object, via: str, field: str) -> None:
        self.refused.labels(self.source_label(source), via, field_label(field)).inc()

    def count_dlq(self, field: str) -> None:
        self.dlq.labels(field_label(field)).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(SERVICE, kind if kind in ERROR_KINDS else "internal").inc()
