-- SLA warnings and breaches. The first-response clock's warning time (CaseOpened 2.2 and
-- PriorityChanged 1.1) and when its warning and breach were recorded (SlaWarningRaised,
-- SlaBreached). Events from before carry no warning time, so NULL is what a rebuild writes for
-- those cases too.
ALTER TABLE case_view
    ADD COLUMN first_response_warning_at timestamptz,
    ADD COLUMN sla_warned_at timestamptz,
    ADD COLUMN sla_breached_at timestamptz;

-- The next-reply clock (CommentAdded 1.1 of a customer-side comment that follows a public staff
-- reply): due and warning times while it runs, and when its last warning and breach were
-- recorded. Comments before 1.1 started none.
ALTER TABLE case_view
    ADD COLUMN next_reply_due timestamptz,
    ADD COLUMN next_reply_warning_at timestamptz,
    ADD COLUMN next_reply_warned_at timestamptz,
    ADD COLUMN next_reply_breached_at timestamptz;
