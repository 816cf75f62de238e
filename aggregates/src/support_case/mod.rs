//! The `SupportCase` aggregate: a customer's request for help, from opening to closing.
//!
//! Statuses: `open` -> `investigating` <-> `waiting_for_customer` -> `resolved` -> `closed`.

mod aggregate;
mod commands;
mod error;
mod events;
mod policy;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use aggregate::{CaseStatus, SupportCase};
pub use commands::{AddComment, OpenCase, SupportCaseCommand};
pub use error::CaseError;
pub use events::{CaseOpened, CommentAdded, SupportCaseEvent, Visibility};
pub use policy::CasePolicy;

use crate::Clock;

/// `aggregate_type` of every SupportCase event in the store.
pub const AGGREGATE_TYPE: &str = "SupportCase";

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

/// Upcasters of SupportCase events, oldest first.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    Vec::new()
}
