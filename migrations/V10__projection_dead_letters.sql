-- Events a projection could not apply, set aside so that one bad event never stops a read
-- model for every tenant. The runner applies a failing batch again one event at a time; an
-- event that fails on its own with a deterministic error (it cannot be decoded, or the
-- database refuses the values it carries) is recorded here and skipped, the checkpoint moves
-- past it, and the metric `subdesk_projection_dead_letters_total` counts it. Transient errors
-- (connection, lock, timeout) are never dead-lettered: the batch is simply tried again.
-- `subdesk projections status` lists these rows. A rebuild does not skip them: it stops at
-- such an event, naming its position, until the projection is fixed to apply it.
CREATE TABLE projection_dead_letters (
    projection  text        NOT NULL,
    position    bigint      NOT NULL,
    tx_id       bigint      NOT NULL,
    event_type  text        NOT NULL,
    error       text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);
