-- Personal data sealed per data subject (issue 17): the data keys, and the master key that
-- wraps them as a fingerprint.
--
-- A data key is stored wrapped (nonce and AES-256-GCM ciphertext) by the master key, which
-- never enters the database. `subject` is a keyed digest of the subject's normalised e-mail
-- address (HMAC-SHA-256 under the master key), not the address: this table names nobody to
-- someone without the master key. Events name keys by `key_id` only. Destroying a row erases
-- its subject: the ciphertext in the log stays (the hash chain covers it) and reads as
-- "[erased]". A subject gets a new key with the first event that needs one after an erasure.

CREATE TABLE subject_keys (
    key_id     uuid        PRIMARY KEY,
    subject    text        NOT NULL UNIQUE,
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The fingerprint of the master key the keys are wrapped by: a process started with another
-- master key refuses to run instead of failing on every sealed event.
CREATE TABLE privacy_master (
    only_row    boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    fingerprint text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The relationship table is kept by a trigger, which cannot open sealed data: who granted a
-- relationship (an actor's id, personal) is read from the grant event itself, found by
-- `granted_position`. `granted_by` keeps what events stored in plain text before sealing.
ALTER TABLE partner_relationships ADD COLUMN granted_position bigint;

CREATE OR REPLACE FUNCTION events_keep_partner_relationships() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := NEW.payload;
    -- The stream id is `<org_id>/<partner_id>`; partner ids never contain `/`.
    org text := substring(NEW.aggregate_id FROM '^(.*)/[^/]*$');
    partner text := substring(NEW.aggregate_id FROM '/([^/]*)$');
BEGIN
    IF NEW.event_type = 'PartnerRelationshipGranted' THEN
        INSERT INTO partner_relationships (org_id, partner_id, active, scopes, granted_at,
                                           granted_by, granted_position, ended_at, ended_by,
                                           version, position)
        VALUES (org, partner, true,
                ARRAY(SELECT jsonb_array_elements_text(p -> 'scopes')),
                (p ->> 'at')::timestamptz, p -> 'by' ->> 'id', NEW.position, NULL, NULL,
                NEW.sequence, NEW.position)
        ON CONFLICT (org_id, partner_id) DO UPDATE
           SET active = true, scopes = EXCLUDED.scopes, granted_at = EXCLUDED.granted_at,
               granted_by = EXCLUDED.granted_by, granted_position = EXCLUDED.granted_position,
               ended_at = NULL, ended_by = NULL,
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
