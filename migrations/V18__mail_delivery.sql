-- E-mail delivery from the notifications outbox. A row is `pending` until the delivery worker
-- sends it (`sent`), sets it aside after retrying for the policy's time (`failed`; `subdesk
-- outbox retry` puts it back), or skips it (`skipped`: older than the cut-off when delivery was
-- first turned on, or with no address to send to). A worker claims rows by leasing them
-- (`leased_until`), so several server processes never send one row at once; `attempts` and
-- `next_attempt_at` are the backoff. Rows of a projection rebuild are re-derived with ON
-- CONFLICT DO NOTHING, so all of this survives a rebuild.
ALTER TABLE notifications
    ADD COLUMN status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN leased_until timestamptz,
    ADD COLUMN last_error text;

UPDATE notifications SET status = 'sent' WHERE sent_at IS NOT NULL;

DROP INDEX notifications_unsent;
CREATE INDEX notifications_pending ON notifications (id) WHERE status = 'pending';

-- When delivery was first turned on: rows created before it, older than the cut-off, are
-- skipped instead of mailed, so a first start never mails the whole history.
CREATE TABLE mail_delivery (
    singleton     boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    enabled_at    timestamptz NOT NULL
);

-- What a mail is about, for rendering it in the recipient's language (case mails: the case's
-- key, summary, org and status at the event); NULL for rows from before, which are sent in the
-- words they were stored with.
ALTER TABLE notifications ADD COLUMN facts jsonb;
