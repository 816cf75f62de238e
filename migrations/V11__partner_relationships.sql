-- Partner relationships (SPEC section 1): a partner reaches a customer org only through a
-- relationship that the org's admin (or a staff admin) granted and that neither side has ended.
-- The relationship is the `PartnerRelationship` aggregate, one stream per org and partner
-- (aggregate id `<org_id>/<partner_id>`), in the event log like every other aggregate.

-- The current state of every relationship, maintained by a trigger in the very transaction
-- that appends the relationship's events. Access decisions for partners read this table on the
-- primary, so a grant or an end is in force for the next request on every process: it is part
-- of the write side (like `idempotency_keys`), not an eventually consistent read model.
CREATE TABLE partner_relationships (
    org_id      text        NOT NULL,
    partner_id  text        NOT NULL,
    active      boolean     NOT NULL,
    scopes      text[]      NOT NULL,   -- view_customers | access_cases (the last ones while ended)
    granted_at  timestamptz,            -- the grant in force (or the last one)
    granted_by  text,
    ended_at    timestamptz,
    ended_by    text,                   -- customer | partner | staff
    version     bigint      NOT NULL,   -- the stream version the row reflects
    position    bigint      NOT NULL,   -- global position of that event
    PRIMARY KEY (org_id, partner_id)
);

-- A partner's orgs: one index probe per partner request.
CREATE INDEX partner_relationships_partner ON partner_relationships (partner_id, org_id) WHERE active;

-- Follows the relationship events as they are inserted. The payloads are the current shape
-- of the events (version 1.0); a new event version must be handled here as well.
CREATE FUNCTION events_keep_partner_relationships() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := NEW.payload;
    -- The stream id is `<org_id>/<partner_id>`; partner ids never contain `/`.
    org text := substring(NEW.aggregate_id FROM '^(.*)/[^/]*$');
    partner text := substring(NEW.aggregate_id FROM '/([^/]*)$');
BEGIN
    IF NEW.event_type = 'PartnerRelationshipGranted' THEN
        INSERT INTO partner_relationships (org_id, partner_id, active, scopes, granted_at,
                                           granted_by, ended_at, ended_by, version, position)
        VALUES (org, partner, true,
                ARRAY(SELECT jsonb_array_elements_text(p -> 'scopes')),
                (p ->> 'at')::timestamptz, p -> 'by' ->> 'id', NULL, NULL,
                NEW.sequence, NEW.position)
        ON CONFLICT (org_id, partner_id) DO UPDATE
           SET active = true, scopes = EXCLUDED.scopes, granted_at = EXCLUDED.granted_at,
               granted_by = EXCLUDED.granted_by, ended_at = NULL, ended_by = NULL,
               version = EXCLUDED.version, position = EXCLUDED.position;
    ELSIF NEW.event_type = 'PartnerRelationshipScopesChanged' THEN
        UPDATE partner_relationships
           SET scopes = ARRAY(SELECT jsonb_array_elements_text(p -> 'to')),
               version = NEW.sequence, position = NEW.position
         WHERE org_id = org AND partner_id = partner;
    ELSIF NEW.event_type = 'PartnerRelationshipEnded' THEN
        UPDATE partner_relationships
           SET active = false, ended_at = (p ->> 'at')::timestamptz, ended_by = p ->> 'ended_by',
               version = NEW.sequence, position = NEW.position
         WHERE org_id = org AND partner_id = partner;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_keep_partner_relationships
    AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.aggregate_type = 'PartnerRelationship')
    EXECUTE FUNCTION events_keep_partner_relationships();

-- The `partner_handover` process manager's memory: every subscription sold through a partner,
-- by org and partner, so that when a relationship ends each of them passes to the org.
CREATE TABLE partner_sales (
    org_id          text NOT NULL,
    partner_id      text NOT NULL,
    subscription_id uuid NOT NULL,
    PRIMARY KEY (org_id, partner_id, subscription_id)
);

-- One-time data steps of an upgrade, recorded when done (e.g. the relationships granted to
-- every partner that held a subscription in force before relationships existed).
CREATE TABLE data_steps (
    name    text        PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT now(),
    detail  jsonb       NOT NULL DEFAULT '{}'
);
