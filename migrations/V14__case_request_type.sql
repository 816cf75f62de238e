-- What a case is about (CaseOpened 2.1): technical, billing or account. Cases opened before
-- request types existed were technical ones, which is what the upcaster says too, so the
-- default fills the existing rows with what a rebuild would write.
ALTER TABLE case_view
    ADD COLUMN request_type text NOT NULL DEFAULT 'technical'
        CHECK (request_type IN ('technical', 'billing', 'account'));
