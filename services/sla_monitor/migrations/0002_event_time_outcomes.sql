-- Contract v2 §4, outcomes follow event time alone.
-- A judged window is judged again when a late lead arrives, so one window can have several
-- emissions of one kind: each carries the window's revision (clocks keep 0: each kind at most once
-- per clock). A retried commit still inserts nothing twice.
ALTER TABLE sla_emissions ADD COLUMN revision integer NOT NULL DEFAULT 0;
ALTER TABLE sla_emissions DROP CONSTRAINT sla_emissions_once;
ALTER TABLE sla_emissions ADD CONSTRAINT sla_emissions_once UNIQUE (subject_id, kind, revision);
-- Declared long after the time it is about (a backlog, a backfill): counted, never paged.
ALTER TABLE sla_emissions ADD COLUMN late boolean NOT NULL DEFAULT false;

-- A judged window is no longer final (a late lead re-judges it): the monitor loads it at start.
UPDATE sla_windows SET final = false
 WHERE final AND NOT coalesce((snapshot ->> 'expired')::boolean, false);
