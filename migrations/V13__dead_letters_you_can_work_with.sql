-- Dead letters an operator can work with (see V10).
--
-- An event a projection cannot apply is `failed`; the later events of the same stream are
-- `parked` behind it, in order, so that retrying the stream after a fix applies them in the
-- order a rebuild would. `subdesk projections retry` re-applies failed and parked events and
-- removes their rows when they apply; `subdesk projections skip` gives one up (`skipped`, with
-- the operator's reason), and every later rebuild and drift check skips it the same way, so a
-- retried or skipped read model always equals a rebuild.
ALTER TABLE projection_dead_letters
    ADD COLUMN aggregate_type text,
    ADD COLUMN aggregate_id   text,
    ADD COLUMN state          text NOT NULL DEFAULT 'failed'
        CHECK (state IN ('failed', 'parked', 'skipped')),
    ADD COLUMN reason         text,          -- why an operator skipped it
    ADD COLUMN resolved_at    timestamptz;   -- when it was skipped

UPDATE projection_dead_letters d
   SET aggregate_type = e.aggregate_type, aggregate_id = e.aggregate_id
  FROM events e
 WHERE e.position = d.position;

-- The runner looks up the parked streams of a projection for every batch.
CREATE INDEX projection_dead_letters_streams
    ON projection_dead_letters (projection, aggregate_type, aggregate_id)
    WHERE state <> 'skipped';
