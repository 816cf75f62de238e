use chrono::Duration;

/// Configurable rules of the subscription lifecycle. Defaults follow the product contract.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionPolicy {
    /// How long after a subscription ended (cancelled or expired) an admin may reactivate it.
    pub reactivation_window: Duration,
    /// At most this many customer contacts on one subscription.
    pub max_contacts: usize,
}

impl Default for SubscriptionPolicy {
    fn default() -> Self {
        Self {
            reactivation_window: Duration::days(60),
            max_contacts: 50,
        }
    }
}
