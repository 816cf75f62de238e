-- Revoking a token tells every server process at commit (channel `subdesk_tokens`, payload
-- the token id), so each drops the token from its lookup cache: a revocation takes effect on
-- the next request everywhere, not after the cache's lifetime. However a token is revoked
-- (API, CLI, or SQL), the notification follows.
CREATE FUNCTION api_tokens_notify_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('subdesk_tokens', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_notify_revoked
    AFTER UPDATE OF revoked_at ON api_tokens
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION api_tokens_notify_revoked();
