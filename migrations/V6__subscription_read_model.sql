-- Subscription list and detail, written only by the `subscriptions` projection (which also
-- keeps the V5 contract tables `entitlements` and `partner_customers`, and writes the
-- subscription e-mails into `notifications`).

-- One row per subscription. The portal tabs are status sets: active = active + non_renewing,
-- upcoming = upcoming, inactive = cancelled + expired. "Days until renewal" is not stored: it
-- is computed at read time from `term_end`, so it never goes stale.
CREATE TABLE subscription_view (
    id                  uuid        PRIMARY KEY,
    entitlement_number  text        NOT NULL,             -- E-XXXX-XXXX-XXXX
    org_id              text        NOT NULL,
    product             text        NOT NULL,
    plan                text        NOT NULL,
    seats               integer     NOT NULL,
    scheduled_seats     integer,                          -- seats from the next renewal, when a reduction is scheduled
    storage_gb          integer     NOT NULL DEFAULT 0,   -- storage add-on bought so far
    term_start          timestamptz NOT NULL,
    term_end            timestamptz NOT NULL,             -- the bill date
    auto_renew          boolean     NOT NULL,
    channel             text        NOT NULL,             -- direct | partner
    partner_id          text,                             -- the selling partner
    billing_account     text        NOT NULL,
    site                text,                             -- linked site URL or group ("begin set up")
    contacts            jsonb       NOT NULL DEFAULT '[]', -- customer contacts, lower-case e-mails, in the order added
    included_products   jsonb       NOT NULL DEFAULT '[]', -- non-empty for a collection
    kept_products       jsonb       NOT NULL DEFAULT '[]', -- a cancelled collection's products that live on
    from_collection     uuid,                             -- the collection a standalone subscription was split off
    status              text        NOT NULL,             -- upcoming | active | non_renewing | cancelled | expired
    app_count           integer     NOT NULL DEFAULT 0,   -- active app subscriptions
    cancellation_reason text,
    cancel_effective_at timestamptz,                      -- when a scheduled (or past) cancellation takes (took) effect
    ended_at            timestamptz,                      -- when it stopped being in force; starts the reactivation window
    created_by          text        NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    version             bigint      NOT NULL              -- stream version the row reflects
);

-- The list reads by tab (status), org or partner, soonest bill date first, keyset on (term_end, id).
CREATE INDEX subscription_view_status ON subscription_view (status, term_end, id);
CREATE INDEX subscription_view_org ON subscription_view (org_id, term_end, id);
CREATE INDEX subscription_view_partner ON subscription_view (partner_id, term_end, id)
    WHERE partner_id IS NOT NULL;

-- App subscriptions: each has its own entitlement number, plan and status.
CREATE TABLE subscription_apps (
    app_id             uuid        PRIMARY KEY,
    subscription_id    uuid        NOT NULL,
    entitlement_number text        NOT NULL,
    app                text        NOT NULL,
    plan               text        NOT NULL,
    status             text        NOT NULL,  -- active | cancelled
    cause              text,                  -- why it was cancelled: requested | subscription_cancelled | subscription_expired
    added_at           timestamptz NOT NULL,
    cancelled_at       timestamptz
);

CREATE INDEX subscription_apps_subscription ON subscription_apps (subscription_id);
