//! The `Subscription` aggregate: a customer org's right to use a product for a term, bought
//! directly or through a partner, with its seats, storage, apps, contacts and site.
//!
//! Statuses: `upcoming` (term not started) -> `active` <-> `non_renewing` (cancellation
//! scheduled at term end) -> `cancelled` | `expired` -> `active` again on reactivation (admin,
//! within the reactivation window).
//!
//! The timed commands (`Activate`, `Renew`, `Expire`) check their own rule against the
//! aggregate's own term dates and the clock, so a timer that fires late, early or twice can
//! never do harm: an early or duplicate one is refused, a late one does exactly what the
//! on-time one would have done.
//!
//! Files: `state.rs` (the write-side state and its values), `aggregate.rs` (`handle` and
//! `apply`), the command handlers by theme (`lifecycle.rs`, `purchases.rs`,
//! `cancellation.rs`, `apps.rs`, `account.rs`), the term arithmetic (`term.rs`) and the
//! limits and checks they share (`checks.rs`). Dependencies run one way, from the aggregate
//! through the handlers to the state, the events and the values; this file only re-exports.

mod account;
mod aggregate;
mod apps;
mod cancellation;
mod checks;
mod commands;
pub mod entitlement;
mod error;
mod events;
mod lifecycle;
mod policy;
mod purchases;
mod services;
mod state;
mod term;
#[cfg(test)]
mod tests;

pub use checks::{MAX_SEATS, MAX_STORAGE_GB};
pub use commands::{AddApp, CancelSubscription, CreateSubscription, SubscriptionCommand};
pub use error::SubscriptionError;
pub use events::{
    AppCancellationCause, AppSubscriptionAdded, AppSubscriptionCancelled, AutoRenewChanged,
    BillingAccountChanged, CancelEffective, CancellationScheduled, CancellationWithdrawn, Channel,
    CollectionCancelled, ContactAdded, ContactRemoved, PlanChanged, SeatReductionScheduled,
    SeatReductionWithdrawn, SeatsIncreased, SiteLinked, StoragePurchased, SubscriptionActivated,
    SubscriptionCancelled, SubscriptionCreated, SubscriptionEvent, SubscriptionExpired,
    SubscriptionPassedToOrg, SubscriptionReactivated, SubscriptionRenewed, AGGREGATE_TYPE,
    EVENT_TYPES,
};
pub use policy::SubscriptionPolicy;
pub use services::SubscriptionServices;
pub use state::{
    AppStatus, AppSubscription, ScheduledCancellation, Subscription, SubscriptionStatus,
};
pub use term::{next_term, term_end_from};

/// Upcasters of Subscription events, oldest first.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    Vec::new()
}
