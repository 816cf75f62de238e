//! The `OrgCalendar` aggregate: the business calendar an org's service levels count on (its
//! support hours), one stream per org (id: the org id).
//!
//! A staff admin sets it with the whole calendar at once; setting the calendar already in
//! force appends nothing. Every change is an event, so the audit trail shows who changed the
//! hours and when. SLA clocks take the calendar in force when they (re)start and carry their
//! due time in their own events: a change applies to clocks started after it.
//!
//! Files: `aggregate.rs` (the state, `handle`, `apply` and the services), and the usual
//! `commands.rs`, `events.rs`; its errors are [`crate::calendar::CalendarError`]. This file
//! only re-exports, so that no sibling imports from it and the modules form no cycle.

mod aggregate;
mod commands;
mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{CalendarServices, OrgCalendar};
pub use commands::{OrgCalendarCommand, SetCalendar};
pub use events::{CalendarSet, OrgCalendarEvent, AGGREGATE_TYPE, EVENT_TYPES};

/// Upcasters of OrgCalendar events, oldest first.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    Vec::new()
}
