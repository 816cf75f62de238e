//! The configurable windows and limits of a subscription.

use chrono::Duration;

/// Configurable rules of the subscription lifecycle. Defaults follow the product contract.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionPolicy {
    /// How long after a subscription ended (cancelled or expired) an admin may reactivate it.
    pub reactivation_window: Duration,
    /// At most this many customer contacts on one subscription.
    pub max_contacts: usize,
    /// The longest term, and how far before or after today a term may start. Bounds every
    /// date a subscription can reach (renewals, reactivations and collection splits keep the
    /// length), so no date falls outside what the read models can store.
    pub max_term: Duration,
}

impl Default for SubscriptionPolicy {
    fn default() -> Self {
        Self {
            reactivation_window: Duration::days(60),
            max_contacts: 50,
            max_term: Duration::days(3653),
        }
    }
}
