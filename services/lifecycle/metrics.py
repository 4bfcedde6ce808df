"""The lifecycle service's metrics, exactly as docs/metrics.md names them. The registry is passed in
(tests and benchmarks use a fresh one). Label values come from bounded sets only."""
from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from services.common.metrics import ConsumerLag
from services.lifecycle.domain import STAGES

SERVICE = "lifecycle"
IGNORE_REASONS = ("backward", "final", "not_allowed")
REJECTION_REASONS = frozenset({
    "no_fit", "no_budget", "no_need", "no_authority", "bad_timing", "duplicate", "bad_data",
    "competitor", "no_response",
})
ERROR_KINDS = ("kafka", "postgres", "decode", "publish", "internal")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_LABEL_VALUE = re.compile(r"^[a-z0-9_]{1,32}$")
# channel / segment are open lists in the contract; keep the first values seen, fold the rest.
MAX_VALUES_PER_LABEL = 32


def normalise_reason(reason: object) -> str:
    """A rejection reason as a label: lower case snake_case, one of the known set, else `other`."""
    if not isinstance(reason, str):
        return "other"
    value = _NOT_WORD.sub("_", reason.strip().lower()).strip("_")
    return value if value in REJECTION_REASONS else "other"


class _BoundedLabel:
    """Values of an open attribute (channel, segment) as label values: `unknown` for none, the
    value itself (if it looks like a word) for the first MAX_VALUES_PER_LABEL distinct ones, else `other`."""

    def __init__(self) -> None:
        self._seen: dict[object, str] = {None: "unknown", "": "unknown"}

    def __call__(self, value: object) -> str:
        label = self._seen.get(value)
        if label is not None:
            return label
        text = value.strip().lower() if isinstance(value, str) else ""
        if _LABEL_VALUE.match(text) and len(self._seen) < MAX_VALUES_PER_LABEL + 2:
            label = text
        else:
            label = "other"
        self._seen[value] = label
        return label


class LifecycleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # Exactly the documented names: no `*_created` companion series (process-wide setting).
        disable_created_metrics()
        self.registry = registry
        self.applied = Counter("leadflow_lifecycle_events_applied_total",
                               "Events applied to a lead (kept in its history with a version)", ["type"],
                               registry=registry)
        self.ignored = Counter("leadflow_lifecycle_events_ignored_total",
                               "Events kept in history but ignored, by reason", ["reason"], registry=registry)
        self.duplicates = Counter("leadflow_lifecycle_duplicates_total",
                                  "Repeated event_ids (no effect)", registry=registry)
        self.transitions = Counter("leadflow_lifecycle_transitions_total",
                                   "Applied events that changed the stage",
                                   ["from_stage", "to_stage", "channel", "segment"], registry=registry)
        self.rejections = Counter("leadflow_lifecycle_rejections_total", "lead.rejected applied, by reason",
                                  ["reason"], registry=registry)
        self.batch_size = Histogram("leadflow_lifecycle_batch_size", "Records per consumed batch",
                                    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=registry)
        self.batch_duration = Histogram("leadflow_lifecycle_batch_duration_seconds",
                                        "Time to apply and commit one batch (Postgres + publish)",
                                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                        registry=registry)
        self.transactions = Counter("leadflow_lifecycle_transactions_total",
                                    "Kafka transactions committed to leadflow.lifecycle (recoveries, and stored "
                                    "rounds merged per partition while one is in flight)", registry=registry)
        self.leads = Gauge("leadflow_lifecycle_leads", "Current leads per stage (projection)", ["stage"],
                           registry=registry)
        self.lag = ConsumerLag(registry, SERVICE)
        self.records = Counter("leadflow_consumer_records_total", "Records consumed", ["service", "topic"],
                               registry=registry)
        self.errors = Counter("leadflow_errors_total", "Handled errors", ["service", "kind"], registry=registry)
        self._channel = _BoundedLabel()
        self._segment = _BoundedLabel()
        # Pre-initialise the series we know, so the first increment is visible to increase().
        self.duplicates.inc(0)
        for reason in IGNORE_REASONS:
            self.ignored.labels(reason)
        for reason in sorted(REJECTION_REASONS) + ["other"]:
            self.rejections.labels(reason)
        for kind in ERROR_KINDS:
            self.errors.labels(SERVICE, kind)
        for stage in STAGES:
            self.leads.labels(stage).set(0)

    def error(self, kind: str) -> None:
        self.errors.labels(SERVICE, kind if kind in ERROR_KINDS else "internal").inc()

    def count_round(self, plan) -> None:
        """Counters of a stored round (a RoundPlan), once it is committed."""
        for etype, n in plan.applied_by_type.items():
            self.applied.labels(etype).inc(n)
        for reason, n in plan.ignored_by_reason.items():
            self.ignored.labels(reason if reason in IGNORE_REASONS else "other").inc(n)
        if plan.duplicates:
            self.duplicates.inc(plan.duplicates)
        for (from_stage, to_stage, channel, segment), n in plan.stage_changes.items():
            self.transitions.labels(from_stage, to_stage, self._channel(channel), self._segment(segment)).inc(n)
        for reason, n in plan.rejection_reasons.items():
            self.rejections.labels(normalise_reason(reason)).inc(n)
        if plan.unreadable_rows:
            self.errors.labels(SERVICE, "decode").inc(len(plan.unreadable_rows))

    def set_leads(self, per_stage: dict[str, int]) -> None:
        for stage in STAGES:
            self.leads.labels(stage).set(per_stage.get(stage, 0))
