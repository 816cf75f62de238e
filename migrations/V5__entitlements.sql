-- The contract between subscriptions and support cases, kept by the `subscriptions`
-- projection and read by the case command path and by access checks.

-- Every support entitlement number (a subscription's, or one of its apps'), the org holding
-- it, and its status. Opening a case needs an entitlement of the org in status `active` or
-- `non_renewing`.
CREATE TABLE entitlements (
    number          text PRIMARY KEY,          -- E-XXXX-XXXX-XXXX
    subscription_id uuid NOT NULL,
    app_id          uuid,                      -- set for an app's own entitlement
    org_id          text NOT NULL,
    product         text NOT NULL,
    status          text NOT NULL,             -- upcoming | active | non_renewing | cancelled | expired
    partner_id      text                       -- set when sold through a partner
);

CREATE INDEX entitlements_subscription ON entitlements (subscription_id);
CREATE INDEX entitlements_org ON entitlements (org_id);

-- Which customer orgs are assigned to which partner: `subscriptions` counts the subscriptions
-- sold through that partner that the org holds in force (upcoming, active, non-renewing). An
-- org is assigned while the count is above zero; when its last such subscription ends, the
-- partner no longer sees the org or its cases.
CREATE TABLE partner_customers (
    partner_id    text    NOT NULL,
    org_id        text    NOT NULL,
    subscriptions integer NOT NULL DEFAULT 0,
    PRIMARY KEY (partner_id, org_id)
);

-- The notifications outbox: one row per e-mail the portals send, for a delivery worker.
-- Rows are derived from events by projections. The unique key makes a rebuild of those
-- projections re-derive the same rows instead of new ones, so nothing is sent twice and
-- `sent_at` survives a rebuild.
CREATE TABLE notifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_position bigint      NOT NULL,  -- the event that caused it
    kind            text        NOT NULL,  -- case_opened, support_reply, status_changed, ...
    recipient       text        NOT NULL,  -- an e-mail address
    subject         text        NOT NULL,
    body            text        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (source_position, kind, recipient)
);

CREATE INDEX notifications_unsent ON notifications (id) WHERE sent_at IS NULL;
