-- One row per projection: the last event it applied, as the pair (tx_id, position).
--
-- Readers never skip an event: they read `(tx_id, position) > checkpoint` and only below
-- `pg_snapshot_xmin(pg_current_snapshot())`, the oldest transaction still running. Every
-- transaction below that horizon has finished, so nothing can appear behind a checkpoint later.
-- The checkpoint moves in the same transaction as the read-model writes it covers.
CREATE TABLE projection_checkpoints (
    name           text        PRIMARY KEY,
    last_tx        xid8        NOT NULL DEFAULT '0',
    last_position  bigint      NOT NULL DEFAULT 0,
    events_applied bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
