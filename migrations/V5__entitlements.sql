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

-- Which customer orgs are assigned to which partner. An org is assigned to a partner once it
-- holds a subscription sold through that partner (whatever that subscription's status later
-- becomes: the partner keeps seeing the history of its customers).
CREATE TABLE partner_customers (
    partner_id    text    NOT NULL,
    org_id        text    NOT NULL,
    subscriptions integer NOT NULL DEFAULT 0,
    PRIMARY KEY (partner_id, org_id)
);
