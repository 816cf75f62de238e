//! What a subscription needs from outside the domain, handed to every command.

use std::sync::Arc;

use super::policy::SubscriptionPolicy;
use crate::Clock;

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
