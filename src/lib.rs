//! subdesk: an event-sourced CQRS engine for customer subscriptions and support cases.
//!
//! - [`config`]: the command line and environment, one typed tree.
//! - [`cli`]: what each subcommand does (the binary's edge).
//! - [`pg`]: the private PostgreSQL cluster used when no `DATABASE_URL` is given.
//! - [`db`]: connection targets and pools for both client libraries; migrations (refinery).
//! - [`store`]: the cached event store behind every `CqrsFramework` (postgres-es underneath).
//! - [`command`]: the command path: metadata, conflict retries, version and position.
//! - [`idempotency`]: `Idempotency-Key` records, request hashing.
//! - [`entitlements`]: reads of the subscription-to-case contract (entitlements, partner orgs).
//! - [`history`]: a stream's events as the history endpoints show them.
//! - [`audit`]: hash-chain verification and JSON Lines export.
//! - [`auth`]: tokens and principals; [`reach`]: the orgs a partner reaches;
//!   [`access`]: who may see and do what.
//! - [`read`]: every query of the read models, typed rows; no HTTP.
//! - [`schema`]: OpenAPI schemas of the domain's wire types (the aggregates stay free of HTTP).
//! - [`http`]: the axum API, one router per resource, problem+json errors, OpenAPI.
//! - [`relationships`]: the partner relationships' current state (access decisions) and the
//!   upgrade step that grants them for earlier sales.
//! - [`process`]: process managers, projections that issue commands (collections, the
//!   hand-over of a partner's subscriptions when its relationship ends).
//! - [`scheduler`]: fires timed commands (auto-resolve, close, activate, renew / expire).
//! - [`state`]: the shared state every handler and task receives (settings, pools, buses).
//! - [`app`]: API, projection runner, scheduler and housekeeping under one shutdown.
//! - [`clock`], [`telemetry`]: the system clock; logs and metrics.

pub mod access;
pub mod app;
pub mod audit;
pub mod audit_cli;
pub mod auth;
pub mod calendars;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod db;
pub mod entitlements;
pub mod feed;
pub mod history;
pub mod http;
pub mod idempotency;
pub mod mail;
pub mod pg;
pub mod privacy;
pub mod process;
pub mod reach;
pub mod read;
pub mod relationships;
pub mod scheduler;
pub mod schema;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;
