-- The lifecycle event store. Postgres is the source of truth: every accepted event with its
-- (lead_id, version), the projection of each lead's current state, the consumer position per
-- input partition (written in the same transaction as a batch's events), and every refused or
-- unreadable input record, so that nothing that reached the service is silently dropped.

-- Every applied event (ignored ones included, with their reason), forever.
CREATE TABLE lead_events (
    lead_id         text        NOT NULL,
    version         integer     NOT NULL,          -- the lead's applied-event count, from 1
    event_id        text        NOT NULL,
    type            text        NOT NULL,
    occurred_at     timestamptz NOT NULL,          -- event time (upstream)
    source          text        NOT NULL,
    payload         jsonb       NOT NULL,
    from_stage      text,                          -- null only for the lead.created that created the lead
    to_stage        text        NOT NULL,
    ignored         text,                          -- backward | final | not_allowed, null when applied
    -- the lead's attributes after the event
    channel         text,
    segment         text,
    fit             text        NOT NULL,
    owner           text,
    team            text,
    -- where the event was read (null for events not read from Kafka)
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    recorded_at     timestamptz NOT NULL DEFAULT now(),   -- start of the storing transaction
    PRIMARY KEY (lead_id, version),
    CONSTRAINT lead_events_event_id_key UNIQUE (event_id)
);
-- One stored event per input record; also the index of the re-publish query after a crash.
CREATE UNIQUE INDEX lead_events_kafka_position ON lead_events (kafka_topic, kafka_partition, kafka_offset);

-- The projection: each lead's state after its last applied event. `leadflow rebuild` recomputes
-- it from lead_events with the domain code. Times are event times (occurred_at).
CREATE TABLE leads (
    lead_id          text        PRIMARY KEY,
    stage            text        NOT NULL,
    version          integer     NOT NULL,
    owner            text,
    team             text,
    channel          text,
    segment          text,
    fit              text        NOT NULL,
    created_at       timestamptz NOT NULL,   -- occurred_at of version 1
    updated_at       timestamptz NOT NULL,   -- occurred_at of the latest applied event
    stage_entered_at timestamptz NOT NULL    -- occurred_at of the event that moved it into `stage`
);

-- Per input partition: the next offset to store ("stored up to"). Advanced in the same
-- transaction as the events it covers, with an optimistic check on the previous value.
-- published_hint is a lagging copy of the Kafka group offset ("published up to"), used only when
-- the group's offsets are gone (e.g. expired); Kafka's group offset is authoritative.
CREATE TABLE consumer_offsets (
    group_id       text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    next_offset    bigint      NOT NULL,
    published_hint bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Every refused duplicate (an event_id already stored): no version, no effect, not published.
CREATE TABLE duplicate_events (
    event_id        text        NOT NULL,
    lead_id         text        NOT NULL,
    type            text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    source          text        NOT NULL,
    payload         jsonb       NOT NULL,
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    seen_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX duplicate_events_kafka_position ON duplicate_events (kafka_topic, kafka_partition, kafka_offset);
CREATE INDEX duplicate_events_event_id ON duplicate_events (event_id);
CREATE INDEX duplicate_events_lead_id ON duplicate_events (lead_id);

-- Input records the service could not read (not an event_envelope message, or an event it
-- cannot store faithfully): kept byte for byte with the reason; they move no lead.
CREATE TABLE unreadable_records (
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    record_key      bytea,
    record_value    bytea,
    error           text        NOT NULL,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);
