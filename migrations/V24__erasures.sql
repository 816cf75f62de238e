-- Erasures (issue 17): one row per request to erase a data subject. The request itself
-- (destroying the subject's keys, the `ErasureRecorded` event, scrubbing what names the
-- subject's address) commits in one transaction; `status` follows the rest, which runs in the
-- background: data derived from the subject's events outside the read models (rendered mail,
-- attachment bytes), then a rebuild of every read model.
--
-- Nothing here names the subject: `subject` is the same keyed digest as in `subject_keys`.
CREATE TABLE erasures (
    id           uuid        PRIMARY KEY,
    subject      text        NOT NULL,
    key_ids      uuid[]      NOT NULL,   -- its keys, destroyed by this or an earlier erasure
    keys_destroyed integer   NOT NULL,   -- by this one
    position     bigint      NOT NULL,   -- the ErasureRecorded event
    status       text        NOT NULL DEFAULT 'running'
                             CHECK (status IN ('running', 'completed', 'failed')),
    events       bigint,                 -- events that held the subject's sealed data
    error        text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

CREATE INDEX erasures_running ON erasures (requested_at) WHERE status = 'running';
