-- Reporting dashboards (SPEC section 4): the read models of the `reports` projection, and the
-- sessions of the `/dashboard` page.
--
-- Every report table is written only by the `reports` projection, from event data alone (no
-- `now()` defaults, no clock): a rebuild produces the same rows, so the drift check stays
-- clean. What depends on "now" (renewals due in the next 30 days, first responses overdue) is
-- computed when read. Counters are kept per org (and per partner for subscriptions), so every
-- report can be cut to what the caller may see.
--
-- Medians cannot be kept as one number updated per event, so the per-case facts are kept
-- instead and medians are taken with `percentile_cont` at read time, over index ranges.

-- One row per support case: what the SLA and resolution reports need.
CREATE TABLE report_case_facts (
    case_id                uuid        PRIMARY KEY,
    org_id                 text        NOT NULL,
    product                text        NOT NULL,
    priority               smallint    NOT NULL,   -- current level, 1..4 (PriorityChanged moves it)
    status                 text        NOT NULL,   -- open | investigating | waiting_for_customer | resolved | closed
    opened_at              timestamptz NOT NULL,
    first_response_due     timestamptz NOT NULL,   -- recomputed on priority changes
    first_responded_at     timestamptz,
    first_response_seconds bigint,                 -- first_responded_at - opened_at
    first_response_breached boolean,               -- as FirstResponseGiven judged it; NULL until answered
    resolved_at            timestamptz,            -- the latest resolution; cleared by a reopening
    resolution_seconds     bigint,                 -- resolved_at - opened_at ("full resolution time")
    auto_resolved          boolean     NOT NULL,   -- the latest resolution was automatic
    auto_resolutions       integer     NOT NULL,   -- CaseAutoResolved events so far
    reopened               integer     NOT NULL,
    closed_at              timestamptz,
    version                bigint      NOT NULL    -- stream version the row reflects
);

-- SLA by priority for cases opened in a period (all orgs, or a set of orgs). The included
-- columns are every one the SLA query reads, so that it is answered from the index alone
-- (index-only scans) for pages that vacuum has marked all-visible.
CREATE INDEX report_case_facts_opened ON report_case_facts (opened_at)
    INCLUDE (priority, first_response_due, first_responded_at, first_response_seconds,
             first_response_breached, resolved_at, closed_at);
CREATE INDEX report_case_facts_org_opened ON report_case_facts (org_id, opened_at)
    INCLUDE (priority, first_response_due, first_responded_at, first_response_seconds,
             first_response_breached, resolved_at, closed_at);
-- Time to resolution for cases resolved in a period.
CREATE INDEX report_case_facts_resolved ON report_case_facts (resolved_at)
    INCLUDE (priority, resolution_seconds) WHERE resolved_at IS NOT NULL;
CREATE INDEX report_case_facts_org_resolved ON report_case_facts (org_id, resolved_at)
    INCLUDE (priority, resolution_seconds) WHERE resolved_at IS NOT NULL;
-- Cases not answered yet, judged against their due time when read.
CREATE INDEX report_case_facts_unanswered ON report_case_facts (first_response_due)
    WHERE first_responded_at IS NULL;

-- Open cases (open, investigating, waiting_for_customer) now, by org, status and priority.
-- A counter: the projection moves a case from one cell to another as its status or priority
-- changes; cells that reach zero are deleted. (No CHECK (cases >= 0): PostgreSQL checks the
-- row an INSERT ... ON CONFLICT proposes, a negative delta, before it turns into an update.)
CREATE TABLE report_open_cases (
    org_id   text     NOT NULL,
    status   text     NOT NULL,
    priority smallint NOT NULL,
    cases    integer  NOT NULL,  -- a cell at 0 is deleted in the same batch
    PRIMARY KEY (org_id, status, priority)
);

-- Per UTC day (of the event's own time), org and product: cases opened, resolutions (manual
-- and automatic; a reopened case resolved again counts again) and automatic resolutions.
CREATE TABLE report_case_days (
    day           date    NOT NULL,
    org_id        text    NOT NULL,
    product       text    NOT NULL,
    opened        integer NOT NULL,
    resolved      integer NOT NULL,
    auto_resolved integer NOT NULL,
    PRIMARY KEY (day, org_id, product)
);

CREATE INDEX report_case_days_org ON report_case_days (org_id, day);

-- The same counts over every org, per day and product: what the unfiltered (staff) view sums,
-- one row per day and product instead of one per org and product (with hundreds of orgs a
-- year of report_case_days is about a row per case).
CREATE TABLE report_case_days_all (
    day           date    NOT NULL,
    product       text    NOT NULL,
    opened        integer NOT NULL,
    resolved      integer NOT NULL,
    auto_resolved integer NOT NULL,
    PRIMARY KEY (day, product)
);

-- One row per subscription: renewals due are read from it (they depend on "now").
CREATE TABLE report_subscription_facts (
    subscription_id uuid        PRIMARY KEY,
    org_id          text        NOT NULL,
    partner_id      text,                   -- the selling partner; NULL for direct
    product         text        NOT NULL,
    plan            text        NOT NULL,
    status          text        NOT NULL,   -- upcoming | active | non_renewing | cancelled | expired
    seats           integer     NOT NULL,
    term_end        timestamptz NOT NULL,   -- the bill date
    auto_renew      boolean     NOT NULL,
    version         bigint      NOT NULL
);

-- Renewals due: active subscriptions by bill date.
CREATE INDEX report_subscription_facts_renewal ON report_subscription_facts (term_end)
    WHERE status = 'active';

-- Subscriptions in force (active and non-renewing) and their seats, by org, selling partner
-- ('' for direct: a key column cannot be NULL), product and plan. A counter like
-- report_open_cases; empty cells are deleted.
CREATE TABLE report_active_subscriptions (
    org_id        text    NOT NULL,
    partner_id    text    NOT NULL,   -- '' = direct
    product       text    NOT NULL,
    plan          text    NOT NULL,
    subscriptions integer NOT NULL,   -- a cell at 0 is deleted in the same batch
    seats         bigint  NOT NULL,
    PRIMARY KEY (org_id, partner_id, product, plan)
);

CREATE INDEX report_active_subscriptions_partner ON report_active_subscriptions (partner_id);

-- One row per cancellation that took effect (SubscriptionCancelled), dated by when it took
-- effect. A subscription reactivated and cancelled again has two rows.
CREATE TABLE report_cancellations (
    subscription_id uuid        NOT NULL,
    sequence        bigint      NOT NULL,   -- of the SubscriptionCancelled event
    org_id          text        NOT NULL,
    partner_id      text,
    product         text        NOT NULL,
    plan            text        NOT NULL,
    seats           integer     NOT NULL,
    effective       text        NOT NULL,   -- immediately | at_term_end
    effective_at    timestamptz NOT NULL,
    reason          text        NOT NULL,
    PRIMARY KEY (subscription_id, sequence)
);

CREATE INDEX report_cancellations_effective ON report_cancellations (effective_at);
CREATE INDEX report_cancellations_org ON report_cancellations (org_id, effective_at);

-- Sessions of the /dashboard page. Not a read model: the sign-in form exchanges an API token
-- for a random session id that travels only in an HttpOnly, SameSite=Strict cookie. Only the
-- sha256 of the session id is stored (like tokens), with the token it stands for, so revoking
-- the token ends its sessions too.
CREATE TABLE dashboard_sessions (
    session_hash bytea       PRIMARY KEY,
    token_id     uuid        NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
