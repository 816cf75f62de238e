-- Webhook endpoints (`/v1/webhooks`): where an owner (staff, an org, a partner - never one
-- token) wants events delivered. Each endpoint follows the event feed as its owner reads it,
-- from `cursor_*` (the feed cursor of the last event it acknowledged), one event at a time in
-- the log's order, so its deliveries keep the order of every aggregate and a failing endpoint
-- holds back nothing but itself.
--
-- A delivery worker claims an endpoint by writing `lease_id` / `leased_until` (several server
-- processes share the work; an expired lease is taken over); it moves the cursor only under
-- its own lease and only after the receiver answered 2xx, so a crash repeats at most the
-- event in flight. Failures back off (`attempts`, `next_attempt_at`); an endpoint failing for
-- longer than the give-up time is `disabled` and its owner told.
CREATE TABLE webhook_endpoints (
    id                         uuid        PRIMARY KEY,
    owner_kind                 text        NOT NULL CHECK (owner_kind IN ('staff', 'org', 'partner')),
    owner_id                   text        NOT NULL,  -- the org or partner id; 'staff' for staff
    scopes                     text[]      NOT NULL DEFAULT '{}',  -- a partner's: what it may read
    url                        text        NOT NULL,
    events                     text[]      NOT NULL,  -- event names and prefixes (`case.*`)
    description                text,
    secret                     text        NOT NULL,
    previous_secret            text,                  -- valid too until it expires (rotation)
    previous_secret_expires_at timestamptz,
    status                     text        NOT NULL DEFAULT 'enabled'
                                           CHECK (status IN ('enabled', 'disabled')),
    disabled_reason            text,
    cursor_tx                  bigint      NOT NULL DEFAULT 0,
    cursor_position            bigint      NOT NULL DEFAULT 0,
    failing_since              timestamptz,
    attempts                   integer     NOT NULL DEFAULT 0,
    next_attempt_at            timestamptz,
    lease_id                   uuid,
    leased_until               timestamptz,
    created_by                 text        NOT NULL,
    created_at                 timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_kind, owner_id, created_at);
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt_at) WHERE status = 'enabled';

-- Every delivery attempt: what was sent, what came back, how long it took.
CREATE TABLE webhook_deliveries (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    position    bigint      NOT NULL,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    ok          boolean     NOT NULL,
    status      integer,                -- the receiver's HTTP status; none when it did not answer
    error       text,
    latency_ms  integer     NOT NULL
);

CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
