-- Support cases: the key sequence, the attachment store, and the read models of the `cases`
-- projection (list / detail, timeline, attachment metadata).

-- Human case keys (CASE-1001, CASE-1002, ...). Allocated before the open command runs, so a
-- refused opening leaves a gap: keys are unique, not dense.
CREATE SEQUENCE case_key_seq START WITH 1001;

-- Case detail and list: one row per case, written only by the `cases` projection.
--
-- E-mail addresses: `participants` and `assignee` are lower case (the domain normalises
-- them); `requester` is kept as the token's user spelled it, so it is compared with lower().
--
-- Two activity times: `last_activity_at` moves with every event and orders the staff's list;
-- `last_public_activity_at` ignores internal comments and orders the customer side's list, so
-- that not even the order of a list tells a customer that support wrote something internal.
--
-- The auto-resolve due time is not stored: it is `waiting_since` + the auto-resolve policy,
-- computed when read, because the aggregate judges the rule with the policy in force at the
-- time of the timer, not the one in force when support asked.
CREATE TABLE case_view (
    id                       uuid        PRIMARY KEY,
    key                      text        NOT NULL UNIQUE,
    org_id                   text        NOT NULL,
    requester                text        NOT NULL,
    opened_by                text        NOT NULL,
    opened_by_role           text        NOT NULL,
    product                  text        NOT NULL,
    product_version          text,
    entitlement_number       text,
    subscription_id          uuid,
    summary                  text        NOT NULL,
    description              text        NOT NULL,
    impact                   smallint    NOT NULL,   -- 1 (critical) .. 4 (low), as opened
    priority                 smallint    NOT NULL,   -- the level support works it at
    status                   text        NOT NULL,   -- open | investigating | waiting_for_customer | resolved | closed
    phone                    text,
    data_access              boolean     NOT NULL,   -- consent in force
    follow_up_of             uuid,                   -- the earlier case this one follows up
    assignee                 text,
    participants             text[]      NOT NULL,
    escalation               text        NOT NULL,   -- none | requested | escalated
    escalation_reason        text,
    escalation_requested_at  timestamptz,
    escalated_at             timestamptz,
    opened_at                timestamptz NOT NULL,
    first_response_due       timestamptz NOT NULL,   -- recomputed on priority changes
    first_responded_at       timestamptz,
    first_response_breached  boolean,                -- known once responded; else judged when read
    waiting_since            timestamptz,            -- set while waiting_for_customer
    resolved_at              timestamptz,            -- set while resolved or closed
    resolved_by              text,                   -- user, or `system` for an automatic resolution
    auto_resolved            boolean     NOT NULL,
    reopened                 integer     NOT NULL,   -- how many times a customer reply reopened it
    closed_at                timestamptz,
    last_activity_at         timestamptz NOT NULL,
    last_public_activity_at  timestamptz NOT NULL,
    public_comments          integer     NOT NULL,
    internal_comments        integer     NOT NULL,
    attachments              integer     NOT NULL,
    version                  bigint      NOT NULL
);

CREATE INDEX case_view_org ON case_view (org_id);
CREATE INDEX case_view_requester ON case_view (lower(requester));
CREATE INDEX case_view_participants ON case_view USING gin (participants);
CREATE INDEX case_view_assignee ON case_view (assignee);
-- Keyset pagination: (activity, id) descending, for each audience.
CREATE INDEX case_view_last_activity ON case_view (last_activity_at DESC, id DESC);
CREATE INDEX case_view_last_public_activity ON case_view (last_public_activity_at DESC, id DESC);

-- The case timeline: one row per event. `visibility` decides who may read a row: `internal`
-- rows (internal comments) never reach customers or partners. `detail` holds the facts of
-- the row's kind (status, priority, participant, attachment, SLA).
CREATE TABLE case_timeline (
    case_id    uuid        NOT NULL,
    sequence   bigint      NOT NULL,
    kind       text        NOT NULL,
    actor_id   text        NOT NULL,
    actor_role text        NOT NULL,
    visibility text        NOT NULL,   -- public | internal
    body       text,
    detail     jsonb       NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (case_id, sequence)
);

-- Attachment metadata as the events state it (the bytes are in case_attachment_blobs).
CREATE TABLE case_attachments (
    id            uuid        PRIMARY KEY,
    case_id       uuid        NOT NULL,
    name          text        NOT NULL,
    size          bigint      NOT NULL,
    content_type  text        NOT NULL,
    sha256        text        NOT NULL,
    added_by      text        NOT NULL,
    added_by_role text        NOT NULL,
    at            timestamptz NOT NULL
);

CREATE INDEX case_attachments_case ON case_attachments (case_id, at);

-- Attachment bytes. Not a read model: the upload handler stores the bytes here first and then
-- issues the command whose `AttachmentAdded` event names them by id and sha256, so events stay
-- small and the log stays the only truth about *which* attachments a case has. A refused
-- command deletes its row again; a crash between the two can leave a row that no event names,
-- which no download ever serves (downloads check the case's events) and a sweep may delete.
CREATE TABLE case_attachment_blobs (
    id        uuid        PRIMARY KEY,
    case_id   uuid        NOT NULL,
    sha256    text        NOT NULL,
    size      bigint      NOT NULL,
    content   bytea       NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
