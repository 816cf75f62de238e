-- Timed rules. `timers` is a read model: the `timers` projection keeps one row per pending
-- timed command, derived from events, so it can be rebuilt from the log like any other.
-- A row stores the instant its rule counts from (`since`); the scheduler adds the policy in
-- force (auto-resolve after 5 days, close after 14 days, ...) when it looks for due rows.
--   kind          since                     fires
--   auto_resolve  waiting_since             SupportCase AutoResolve
--   close         resolved_at               SupportCase Close
--   activate      term_start                Subscription Activate
--   term_end      term_end                  Subscription Renew, else Expire
CREATE TABLE timers (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    kind           text        NOT NULL,
    since          timestamptz NOT NULL,
    armed_by       bigint      NOT NULL,   -- position of the event that armed the timer
    PRIMARY KEY (aggregate_type, aggregate_id, kind)
);

CREATE INDEX timers_due ON timers (kind, since);

-- The scheduler's own bookkeeping (not a read model, never rebuilt): who is firing which
-- timer until when. A claim takes a lease; a timer whose lease is live is not fired again, so
-- several servers never fire one timer at once, and a fired timer is left alone until the
-- projection has removed or re-armed it. A new `since` (a re-armed timer) is a new timer.
CREATE TABLE timer_leases (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    kind           text        NOT NULL,
    since          timestamptz NOT NULL,
    leased_until   timestamptz NOT NULL,
    attempts       integer     NOT NULL DEFAULT 1,
    last_outcome   text,
    PRIMARY KEY (aggregate_type, aggregate_id, kind)
);
