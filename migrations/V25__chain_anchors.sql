-- Sealing the events written before sealing existed (issue 17; `subdesk privacy
-- seal-existing`).
--
-- Those events hold personal data in plain text, so an erasure cannot reach them. The rewrite
-- seals them in place: same `position`, `tx_id`, stream, sequence, type and `recorded_at`
-- (checkpoints, cursors, feeds and receipts point at them), the personal fields sealed and the
-- version marked `+sealed`, and the hash of every event from the first sealed one to the end of
-- its stream recomputed, since each hash chains the one before.
--
-- chain_anchors keeps, for every event whose hash the rewrite moved, the hash it had: an
-- export taken before still verifies against the log through them (`verify --against`), and
-- `subdesk verify` checks each of them by opening the sealed event and hashing what it held
-- (an erased subject's events can no longer be opened: those links are reported as
-- unverifiable, not as broken).

CREATE TABLE chain_anchors (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    old_hash       bytea       NOT NULL,   -- before the rewrite (the first one, if several)
    new_hash       bytea       NOT NULL,   -- after it
    sealed         boolean     NOT NULL,   -- a rewrite sealed it (else only its hash moved)
    rewritten_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- The log stays append-only. The one change let through: in a transaction that set
-- `subdesk.sealing_rewrite` to `on`, a row keeps every column that names it and its time,
-- either gains `+sealed` (its fields sealed) or keeps its version and content (only its hash
-- moves with its stream's chain), and its new hash is the one its anchor records.
CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('subdesk.sealing_rewrite', true) = 'on'
       AND NEW.position = OLD.position
       AND NEW.tx_id = OLD.tx_id
       AND NEW.aggregate_type = OLD.aggregate_type
       AND NEW.aggregate_id = OLD.aggregate_id
       AND NEW.sequence = OLD.sequence
       AND NEW.event_type = OLD.event_type
       AND NEW.recorded_at = OLD.recorded_at
       -- Sealed now (its fields change with its version), or only re-hashed (nothing else
       -- changes).
       AND (NEW.event_version = OLD.event_version || '+sealed'
            OR (NEW.event_version = OLD.event_version
                AND NEW.payload = OLD.payload
                AND NEW.metadata = OLD.metadata))
       AND EXISTS (SELECT 1 FROM chain_anchors a
                    WHERE a.aggregate_type = OLD.aggregate_type
                      AND a.aggregate_id = OLD.aggregate_id
                      AND a.sequence = OLD.sequence
                      AND a.new_hash = NEW.hash)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
