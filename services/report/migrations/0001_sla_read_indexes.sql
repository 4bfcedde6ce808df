-- Indexes the report and the console need on the SLA monitor's tables (its migrations create the
-- tables; these are the read side's and live with it, applied after the monitor's own).

-- The clocks of one SLA started in a period (attainment, breaches, corrections).
CREATE INDEX IF NOT EXISTS report_sla_clocks_sla_start ON sla_clocks (sla, started_at);

-- Open clocks by due time: the console's "at risk" page and the acceptances due soon.
CREATE INDEX IF NOT EXISTS report_sla_clocks_open_due ON sla_clocks (due_at) WHERE outcome IS NULL;

-- The windows of a volume SLA in a period.
CREATE INDEX IF NOT EXISTS report_sla_windows_sla_start ON sla_windows (sla, window_start);
