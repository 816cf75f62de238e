-- API tokens. Only a sha256 of the token is stored; the token itself is shown once, when it is
-- issued. Revocation keeps the row (auditors can see who held what).
CREATE TABLE api_tokens (
    id          uuid        PRIMARY KEY,
    token_hash  bytea       NOT NULL UNIQUE,
    role        text        NOT NULL
                CHECK (role IN ('customer', 'partner', 'agent', 'admin', 'auditor')),
    user_id     text        NOT NULL,
    org_id      text,
    org_admin   boolean     NOT NULL DEFAULT false,
    partner_id  text,
    scopes      text[]      NOT NULL DEFAULT '{}',
    label       text,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (role <> 'customer' OR org_id IS NOT NULL),
    CHECK (role <> 'partner' OR partner_id IS NOT NULL)
);

-- Idempotency keys of accepted commands.
--
-- A row is written by a trigger on the events table, in the transaction that appends the
-- command's events, so "the command was accepted" and "its key is taken" can never be seen
-- apart: a crash between the two is impossible. A second command that carries a key already
-- taken by another request fails its insert with unique_violation, which postgres-es reports as
-- a conflict; the command path then finds the committed row and answers with its response.
CREATE TABLE idempotency_keys (
    scope           text        NOT NULL,  -- the token the key belongs to
    key             text        NOT NULL,
    request_hash    text        NOT NULL,  -- method, path and body of the first request
    request_id      text        NOT NULL,
    -- The transaction that took the key: later events of the same command are recognised by
    -- it (never by the client-supplied request id, which a retry may repeat).
    tx              xid8        NOT NULL DEFAULT pg_current_xact_id(),
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    first_sequence  bigint      NOT NULL,
    last_sequence   bigint      NOT NULL,
    last_position   bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The HTTP response, stored just after commit. NULL only if the process died in between;
    -- the command path then rebuilds it from the aggregate at `last_sequence`.
    response_status smallint,
    response_body   jsonb,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE FUNCTION events_record_idempotency_key() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k text := NEW.metadata ->> 'idempotency_key';
    s text := NEW.metadata ->> 'idempotency_scope';
    r text := NEW.metadata ->> 'request_id';
    existing idempotency_keys%ROWTYPE;
BEGIN
    IF k IS NULL OR s IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO existing FROM idempotency_keys WHERE scope = s AND key = k FOR UPDATE;
    IF NOT FOUND THEN
        -- A concurrent first use of the same key blocks here and fails with unique_violation.
        INSERT INTO idempotency_keys (scope, key, request_hash, request_id, aggregate_type,
                                      aggregate_id, first_sequence, last_sequence, last_position)
        VALUES (s, k, coalesce(NEW.metadata ->> 'request_hash', ''), coalesce(r, ''),
                NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.sequence, NEW.position);
    ELSIF existing.tx = pg_current_xact_id() THEN
        -- A later event of the same command (the same transaction).
        UPDATE idempotency_keys
           SET last_sequence = NEW.sequence, last_position = NEW.position
         WHERE scope = s AND key = k;
    ELSIF existing.created_at < now() - interval '24 hours' THEN
        -- Keys are remembered for 24 hours; after that the key may be used afresh.
        UPDATE idempotency_keys
           SET request_hash = coalesce(NEW.metadata ->> 'request_hash', ''),
               request_id = coalesce(r, ''),
               aggregate_type = NEW.aggregate_type, aggregate_id = NEW.aggregate_id,
               first_sequence = NEW.sequence, last_sequence = NEW.sequence,
               last_position = NEW.position, created_at = now(), tx = pg_current_xact_id(),
               response_status = NULL, response_body = NULL
         WHERE scope = s AND key = k;
    ELSE
        RAISE EXCEPTION 'idempotency key % was already used by another request', k
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_record_idempotency_key
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_record_idempotency_key();
