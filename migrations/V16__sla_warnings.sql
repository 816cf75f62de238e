-- The first-response clock's warning time (SlaTargetSet) and when its warning and breach were
-- recorded (SlaWarningRaised, SlaBreached). Cases opened before targets were events have none
-- of these events, so NULL is what a rebuild writes for them too.
ALTER TABLE case_view
    ADD COLUMN first_response_warning_at timestamptz,
    ADD COLUMN sla_warned_at timestamptz,
    ADD COLUMN sla_breached_at timestamptz;
