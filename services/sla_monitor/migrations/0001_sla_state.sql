-- The SLA monitor's durable state. One instance writes it at a time (an advisory lock, and the
-- epoch in sla_owner that every write transaction checks); each input batch and each timer tick
-- that changed something is ONE transaction over these tables, so a restart resumes exactly where
-- the last committed transaction left off. See docs/sla_monitor.md.

-- Who may write: the instance that last incremented `epoch`. A write transaction checks the epoch
-- it started with (FOR SHARE), so an instance that lost its lock (a zombie) cannot commit.
CREATE TABLE sla_owner (
    id       smallint    PRIMARY KEY CHECK (id = 1),
    epoch    bigint      NOT NULL,
    instance text,
    since    timestamptz
);
INSERT INTO sla_owner (id, epoch) VALUES (1, 0);

-- The engine-level part of the SLA engine's snapshot (clock time, first event seen, window cursors).
CREATE TABLE sla_engine_state (
    id             smallint    PRIMARY KEY CHECK (id = 1),
    policy_version text        NOT NULL,
    state          jsonb       NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every clock the engine started, as its latest snapshot. `final` clocks will not change again
-- (kept as history); the others are loaded on start.
CREATE TABLE sla_clocks (
    clock_id       text        PRIMARY KEY,   -- the clock_id of its leadflow.sla records
    sla            text        NOT NULL,
    lead_id        text        NOT NULL,
    start_event_id text        NOT NULL,
    team           text,
    outcome        text,                      -- null while open
    started_at     timestamptz NOT NULL,
    due_at         timestamptz,
    final          boolean     NOT NULL,
    snapshot       jsonb       NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sla_clocks_not_final ON sla_clocks (clock_id) WHERE NOT final;
CREATE INDEX sla_clocks_lead ON sla_clocks (lead_id);

-- Volume windows (a week, an owner's month) being counted or judged, with the distinct leads.
CREATE TABLE sla_windows (
    window_id    text        PRIMARY KEY,
    sla          text        NOT NULL,
    owner        text,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    outcome      text,
    final        boolean     NOT NULL,
    snapshot     jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sla_windows_not_final ON sla_windows (window_id) WHERE NOT final;

-- Per input partition of leadflow.lifecycle: the next offset to process. Written in the same
-- transaction as the state the records before it produced: input is applied exactly once.
CREATE TABLE sla_input_offsets (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- The outbox: every emission (start, met, breach, cancel, correction, window close), in order,
-- with the leadflow.sla record ready to send. A clock or window gets each kind at most once.
CREATE TABLE sla_emissions (
    id           bigserial   PRIMARY KEY,
    subject_id   text        NOT NULL,        -- clock_id or window_id
    kind         text        NOT NULL,
    sla          text        NOT NULL,
    lead_id      text,
    team         text,
    outcome      text        NOT NULL,
    emitted_at   timestamptz NOT NULL,
    record_key   bytea       NOT NULL,
    record_value bytea       NOT NULL,        -- Avro sla_outcome, single-object encoded
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sla_emissions_once UNIQUE (subject_id, kind)
);

-- A lagging copy of the relay's position ("published up to this id"). The authoritative position
-- is the relay group's offset, committed in the same Kafka transaction as the records; this copy is
-- only used when the group's offsets are gone (expired).
CREATE TABLE sla_relay_position (
    id             smallint    PRIMARY KEY CHECK (id = 1),
    published_hint bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sla_relay_position (id, published_hint) VALUES (1, 0);

-- Input records that are not a lifecycle record this service can read: kept byte for byte with
-- the reason (they change no clock), never dropped silently.
CREATE TABLE sla_unreadable_records (
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    record_key   bytea,
    record_value bytea,
    error        text        NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
