-- The SQL one subdesk command costs, as postgres-es 0.5.0 sends it: the stream read (the
-- events appended since the cached version), then the insert transaction
-- (BEGIN / INSERT / COMMIT), with every trigger of the events table (hash chain,
-- idempotency key, NOTIFY). Each client appends to streams of its own, so no insert
-- conflicts, as in the HTTP load where every worker owns its aggregates.
\set n random(1, 1000)
SELECT coalesce(max(sequence), 0) AS seq FROM events WHERE aggregate_type = 'PgBench' AND aggregate_id = 'pgb-' || :client_id::text || '-' || :n::text \gset
BEGIN;
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('PgBench', 'pgb-' || :client_id::text || '-' || :n::text, :seq::bigint + 1, 'CommentAdded', '1.0', '{"at": "2026-03-02T09:12:44.123456Z", "body": "We are looking into it; which project is affected?", "type": "CommentAdded", "author": {"id": "sam@support.test", "role": "agent"}, "comment_id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "visibility": "public"}', '{"actor_id": "sam@support.test", "actor_role": "agent", "request_id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3e", "causation_id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3e", "correlation_id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3e"}');
COMMIT;
