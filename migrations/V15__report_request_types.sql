-- The case report counts openings per request type (CaseOpened 2.1). Cases opened before
-- request types existed were technical ones, as the upcaster says, so the default is what a
-- rebuild writes for them.
ALTER TABLE report_case_facts
    ADD COLUMN request_type text NOT NULL DEFAULT 'technical';
