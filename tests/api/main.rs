//! Integration tests: the real application against a real PostgreSQL, through HTTP and the
//! CLI. One binary, so it compiles and links once; one throwaway cluster for the process, a
//! fresh database per test.

mod access_matrix;
mod audit;
mod auth;
mod bounded_work;
mod calendars;
mod case_attachments;
mod case_fixtures;
mod case_list;
mod case_visibility;
mod cases;
mod cli;
mod conflicts;
mod dashboard;
mod entitlements;
mod erasure;
mod faults;
mod feed;
mod hardening;
mod helpers;
mod idempotency;
mod input_fuzz;
mod layout;
mod mail;
mod operations;
mod partner_relationships;
mod projections;
mod replica;
mod reports;
mod seal_existing;
mod sla;
mod subscriptions;
mod timeouts;
mod timers;
mod timetravel;
mod tokens;
mod upcasting;
mod wakes;
mod webhooks;
