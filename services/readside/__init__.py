"""Read-side queries over PostgreSQL (the event store and the SLA monitor's clocks and windows),
aggregated in SQL: the demo's month summary and a lead's clocks. `leadflow report` must give the
same counts for the same month: it attributes clocks by started_at and windows by window_start,
as these queries do."""
