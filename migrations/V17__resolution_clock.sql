-- The resolution clock (CaseOpened 2.3 and the 1.1 versions of the events that pause, resume or
-- stop it): its target and the business time it counted before it last started, in seconds;
-- since when it runs (NULL while paused or stopped); its due and warning times while it runs;
-- and when its warning and breach were recorded. Cases opened before 2.3 have no clock: NULL
-- target, which a rebuild writes too.
ALTER TABLE case_view
    ADD COLUMN resolution_target_seconds bigint,
    ADD COLUMN resolution_elapsed_seconds bigint,
    ADD COLUMN resolution_running_since timestamptz,
    ADD COLUMN resolution_due timestamptz,
    ADD COLUMN resolution_warning_at timestamptz,
    ADD COLUMN resolution_warned_at timestamptz,
    ADD COLUMN resolution_breached_at timestamptz;

-- The last next-reply clock is kept once support replies (its due time stays; when it was met
-- is added), so that readers see whether the last reply was on time.
ALTER TABLE case_view
    ADD COLUMN next_reply_started_at timestamptz,
    ADD COLUMN next_reply_met_at timestamptz;

-- Report facts: the resolution clock's target and the business time it counted (at the
-- resolution, the business time to resolve without the waiting for the customer), and the
-- next-reply clocks met and breached, with the running one's due time.
ALTER TABLE report_case_facts
    ADD COLUMN resolution_target_seconds bigint,
    ADD COLUMN resolution_elapsed_seconds bigint,
    ADD COLUMN next_reply_due timestamptz,
    ADD COLUMN next_replies_met integer NOT NULL DEFAULT 0,
    ADD COLUMN next_replies_breached integer NOT NULL DEFAULT 0;
