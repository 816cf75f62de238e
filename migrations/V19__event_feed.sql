-- The event feed's index (`GET /v1/events`, webhooks): which events belong to whom, so that a
-- customer's or partner's feed reads only its own part of the log instead of scanning it.
--
-- One row per event and audience: `org:<org id>` for every event of an org's case,
-- subscription, relationship or calendar, and also `partner:<partner id>` for a relationship's
-- events. Rows are in the gap-free catch-up order `(tx_id, position)` of the log, written by
-- the `feed` projection (one runner at a time, batch by batch), so a reader that keeps
-- `(tx_id, position)` as its cursor never misses a row that appears later. Who may read which
-- row is decided when it is read (relationships and participants change), never here:
-- `staff_only` marks the events the customer side never gets (internal comments).
CREATE TABLE feed_index (
    audience       text    NOT NULL,
    tx_id          bigint  NOT NULL,
    position       bigint  NOT NULL,
    aggregate_type text    NOT NULL,
    aggregate_id   text    NOT NULL,
    event_type     text    NOT NULL,
    staff_only     boolean NOT NULL,
    PRIMARY KEY (audience, tx_id, position)
);

-- What decides who sees a case or subscription stream, as of the feed's own position (kept by
-- the same projection, so it never lags the index): its org (from the first event; later events
-- do not name it), a case's requester and participants, the partner that manages a subscription
-- (none once it passed to the org).
CREATE TABLE feed_streams (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    org_id         text   NOT NULL,
    requester      text,
    participants   text[] NOT NULL DEFAULT '{}',
    partner_id     text,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
