-- The lead.created attributes (campaign, country) of each lead, kept only while the policy's
-- scopes or shares read them (e.g. a joint campaign's meeting goal): the lead's later events,
-- which do not carry them, are counted by them. Written in the same transaction as the rest.
CREATE TABLE sla_lead_attributes (
    lead_id    text        PRIMARY KEY,
    attributes jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
