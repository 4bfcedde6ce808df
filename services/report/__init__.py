"""`leadflow report` and `leadflow console`'s data: the weekly meeting and the monthly SLA review,
computed from the event store and the SLA monitor's state (docs/report.md)."""
