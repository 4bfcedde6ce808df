-- Indexes of the read side (`leadflow report`, `leadflow console`): every section of the report
-- reads one kind of event, or the entries into stages, within a period of event time.

-- Events of one type in a period (assignments, rejections, downloads, opportunities, deals).
CREATE INDEX lead_events_type_time ON lead_events (type, occurred_at);

-- Entries into a stage (the event moved the lead) in a period: volumes per stage, conversions.
CREATE INDEX lead_events_stage_entries ON lead_events (to_stage, occurred_at)
    WHERE ignored IS NULL AND from_stage IS DISTINCT FROM to_stage;

-- A report for one team checks the team exists and filters leads by their current team.
CREATE INDEX leads_team ON leads (team);
