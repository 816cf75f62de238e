//! What a case needs from outside the domain, handed to every command.

use std::sync::Arc;

use super::policy::CasePolicy;
use crate::Clock;

/// What a case needs from outside the domain: the time and the configured policies.
#[derive(Debug, Clone)]
pub struct CaseServices {
    pub clock: Arc<dyn Clock>,
    pub policy: CasePolicy,
}

impl CaseServices {
    pub fn new(clock: Arc<dyn Clock>, policy: CasePolicy) -> Self {
        Self { clock, policy }
    }
}
