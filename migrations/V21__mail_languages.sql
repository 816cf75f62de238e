-- The language people are mailed in, set through the API: a person's own choice
-- (`PUT /v1/me/settings`, `kind = 'user'`, subject = their lower-case address) wins over their
-- org's (`PUT /v1/orgs/{org_id}/settings`, `kind = 'org'`), which wins over the server's
-- configuration (`--mail-org-languages`, `--mail-language`). Read by the mail worker when it
-- renders a row, so a change holds for every mail not yet sent.
CREATE TABLE mail_languages (
    kind       text        NOT NULL CHECK (kind IN ('org', 'user')),
    subject    text        NOT NULL,
    language   text        NOT NULL CHECK (language IN ('en', 'ja')),
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, subject)
);

-- Partner users who opted in to alerts on their customers' cases (seed 002): each gets a copy
-- of the case mails the customer side gets (confirmation, status changes, replies,
-- escalations; never an internal comment) for the cases of every org whose relationship with
-- their partner allows `access_cases` at the time of the event.
CREATE TABLE partner_case_alerts (
    partner_id text        NOT NULL,
    email      text        NOT NULL,   -- lower case
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, email)
);
