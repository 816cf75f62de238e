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

mod aggregate;
mod commands;
pub mod entitlement;
mod error;
mod events;
mod policy;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use aggregate::{
    next_term, term_end_from, AppStatus, AppSubscription, ScheduledCancellation, Subscription,
    SubscriptionStatus, MAX_SEATS, MAX_STORAGE_GB,
};
pub use commands::{
    AddApp, CancelEffective, CancelSubscription, CreateSubscription, SubscriptionCommand,
};
pub use error::SubscriptionError;
pub use events::{
    AppCancellationCause, AppSubscriptionAdded, AppSubscriptionCancelled, AutoRenewChanged,
    BillingAccountChanged, CancellationScheduled, CancellationWithdrawn, Channel,
    CollectionCancelled, ContactAdded, ContactRemoved, PlanChanged, SeatReductionScheduled,
    SeatReductionWithdrawn, SeatsIncreased, SiteLinked, StoragePurchased, SubscriptionActivated,
    SubscriptionCancelled, SubscriptionCreated, SubscriptionEvent, SubscriptionExpired,
    SubscriptionPassedToOrg, SubscriptionReactivated, SubscriptionRenewed, EVENT_TYPES,
};
pub use policy::SubscriptionPolicy;

use crate::Clock;

/// `aggregate_type` of every Subscription event in the store.
pub const AGGREGATE_TYPE: &str = "Subscription";

/// What a subscription needs from outside the domain: the time and the configured policies.
#[derive(Debug, Clone)]
pub struct SubscriptionServices {
    pub clock: Arc<dyn Clock>,
    pub policy: SubscriptionPolicy,
}

impl SubscriptionServices {
    pub fn new(clock: Arc<dyn Clock>, policy: SubscriptionPolicy) -> Self {
        Self { clock, policy }
    }
}

/// Upcasters of Subscription events, oldest first.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    Vec::new()
}
