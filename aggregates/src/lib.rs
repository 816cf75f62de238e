//! The subdesk domain. Pure: no IO, no database, no clock or random ids of its own.
//!
//! - [`support_case`]: the `SupportCase` aggregate (open, comment, ... resolve, auto-resolve).
//! - [`subscription`]: the `Subscription` aggregate (create, seats, storage, plan, renew,
//!   expire, cancel, reactivate, site, contacts, apps, billing account, collections).
//! - [`partner_relationship`]: the `PartnerRelationship` aggregate: an org's consent that a
//!   partner reaches it, with scopes; granted and ended by the org's side, staff or the partner.
//! - [`org_calendar`]: the `OrgCalendar` aggregate: an org's business calendar (support
//!   hours, zone, holidays), which SLA clocks count on.
//! - [`calendar`]: business calendars and business-time arithmetic (pure functions).
//! - [`clock`]: the [`Clock`] trait through which aggregates learn the time; the binary
//!   provides the system clock, tests and benchmarks a [`ManualClock`].
//! - [`actor`]: who issued a command, as the domain sees it (role and id), used by rules such
//!   as "internal comments only for agents".
//! - [`upcast`]: turning stored events of older versions into the current shape.
//!
//! Every aggregate lives in its own folder with `commands.rs`, `events.rs`, `error.rs`,
//! `aggregate.rs` (`handle` and `apply`) and `tests.rs` (given / when / then on cqrs-es's
//! `TestFramework`); the larger ones keep their state in `state.rs` and their command handlers
//! in files named for their theme (`lifecycle.rs`, `comments.rs`, `cancellation.rs`, ...).
//! Imports between these files run one way, and only `tests.rs` imports its folder's `mod.rs`,
//! so the modules form no cycle.

pub mod actor;
pub mod calendar;
pub mod clock;
pub mod org_calendar;
pub mod partner_relationship;
pub mod subscription;
pub mod support_case;
pub mod upcast;

pub use actor::{Actor, ActorRole};
pub use clock::{Clock, ManualClock};

/// A domain error that the HTTP edge turns into a `422` problem with a stable machine code.
pub trait DomainError: std::error::Error {
    /// Stable, snake_case, never renamed: clients switch on it.
    fn code(&self) -> &'static str;

    /// Whether the refusal is an outage of something the domain reads (503 and a retry at
    /// the edge), not a rule the command broke.
    fn is_outage(&self) -> bool {
        false
    }
}
