-- The event store: one append-only table for every aggregate type.
--
-- The first seven columns are the ones postgres-es 0.5.0 names on insert and select. The rest
-- fill themselves, so the cqrs-es write path needs no change to produce them:
--   position     global, unique, drawn at insert. Has gaps and is NOT commit-ordered: a
--                position becomes visible when its transaction commits, so a lower position
--                may appear after a higher one. Catch-up readers therefore order by
--                (tx_id, position) and read only below the transaction horizon (see V3).
--   tx_id        the inserting transaction (xid8, never wraps).
--   recorded_at  when the database stored the event.
--   hash         sha256(previous event's hash in the same stream || canonical row content),
--                filled by a BEFORE INSERT trigger. Per stream, so no global lock is needed.

CREATE TABLE events (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence >= 1),
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    position       bigint      GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    hash           bytea       NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_position ON events (position);
-- The catch-up order of every reader (projections, audit paging, export).
CREATE INDEX events_catch_up ON events (tx_id, position);
CREATE INDEX events_recorded_at ON events (recorded_at);

-- The canonical content that the chain hashes. `subdesk verify` recomputes exactly this in
-- Rust from the stored columns (jsonb's text form is canonical: keys sorted, one spacing), so a
-- verification does not trust this function.
CREATE FUNCTION events_canonical(e events) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_to(concat_ws(E'\n',
        e.aggregate_type,
        e.aggregate_id,
        e.sequence::text,
        e.event_type,
        e.event_version,
        (extract(epoch FROM e.recorded_at) * 1000000)::bigint::text,
        e.payload::text,
        e.metadata::text), 'UTF8')
$$;

CREATE FUNCTION events_chain_hash() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF NEW.sequence = 1 THEN
        previous := ''::bytea;
    ELSE
        SELECT hash INTO previous
          FROM events
         WHERE aggregate_type = NEW.aggregate_type
           AND aggregate_id = NEW.aggregate_id
           AND sequence = NEW.sequence - 1;
        IF NOT FOUND THEN
            -- Streams are contiguous: an event without its predecessor is refused.
            RAISE EXCEPTION 'event % of stream %/% has no predecessor',
                NEW.sequence, NEW.aggregate_type, NEW.aggregate_id;
        END IF;
    END IF;
    NEW.hash := sha256(previous || events_canonical(NEW));
    RETURN NEW;
END
$$;

CREATE TRIGGER events_chain_hash
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_chain_hash();

-- History is never rewritten: UPDATE, DELETE and TRUNCATE are refused. (A superuser can
-- still disable the trigger; the hash chain is what makes that visible.)
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Wake catch-up readers at commit. One notification per inserting statement; PostgreSQL
-- folds identical notifications of one transaction into one.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('subdesk_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
