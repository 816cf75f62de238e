//! The reports' read: the `reports` read models (migration V8), read in a handful of indexed
//! queries, never from the log. The scope (which orgs, which partner) comes from
//! [`crate::access::reports`]; the period from the caller.

mod model;
mod period;
mod queries;

pub use model::*;
pub use period::{InvalidPeriod, Period};
pub use queries::{cases, report_transaction, sla, subscriptions};

/// The days a report covers by default, up to today.
pub const DEFAULT_DAYS: i64 = 30;
/// The longest period a report covers (two years, a leap day included).
pub const MAX_DAYS: i64 = 731;
/// How far ahead renewals count as due.
pub const RENEWAL_WINDOW_DAYS: i64 = 30;
/// How many due renewals the report lists one by one.
pub const RENEWAL_ITEMS: i64 = 100;
