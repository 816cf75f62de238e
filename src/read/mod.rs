//! The read layer: every query against the read-model tables, returning typed rows (mapped by
//! column name, never by position). HTTP handlers and the dashboard call it; it knows SQL and
//! the rows, never axum or the HTTP error type, and it decides nothing about access: callers
//! pass the scope the access rules computed.
//!
//! - [`cursor`]: the one keyset cursor every list of resources pages with.
//! - [`sql`]: the dynamic SQL builder of filtered lists.
//! - [`cases`], [`subscriptions`], [`partners`]: the read models of those resources.

pub mod cases;
pub mod cursor;
pub mod partners;
pub mod reports;
pub mod sql;
pub mod subscriptions;

pub use cursor::Cursor;
