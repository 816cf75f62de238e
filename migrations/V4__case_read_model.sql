-- Human case keys (CASE-1001, CASE-1002, ...). Allocated before the open command runs, so a
-- refused opening leaves a gap: keys are unique, not dense.
CREATE SEQUENCE case_key_seq START WITH 1001;

-- Case detail and list: one row per case, written only by the `cases` projection.
CREATE TABLE case_view (
    id                 uuid        PRIMARY KEY,
    key                text        NOT NULL UNIQUE,
    org_id             text        NOT NULL,
    requester          text        NOT NULL,
    product            text        NOT NULL,
    summary            text        NOT NULL,
    description        text        NOT NULL,
    impact             smallint    NOT NULL,
    status             text        NOT NULL,
    opened_by          text        NOT NULL,
    opened_at          timestamptz NOT NULL,
    first_response_due timestamptz,
    last_activity_at   timestamptz NOT NULL,
    public_comments    integer     NOT NULL DEFAULT 0,
    internal_comments  integer     NOT NULL DEFAULT 0,
    version            bigint      NOT NULL
);

CREATE INDEX case_view_org ON case_view (org_id);
CREATE INDEX case_view_last_activity ON case_view (last_activity_at DESC, id DESC);

-- The case timeline: one row per event worth showing (comments for now). Visibility decides
-- who may read a row; internal rows never reach customers or partners.
CREATE TABLE case_timeline (
    case_id    uuid        NOT NULL,
    sequence   bigint      NOT NULL,
    kind       text        NOT NULL,
    actor_id   text        NOT NULL,
    actor_role text        NOT NULL,
    visibility text        NOT NULL,
    body       text,
    at         timestamptz NOT NULL,
    PRIMARY KEY (case_id, sequence)
);
