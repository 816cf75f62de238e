//! The `SupportCase` aggregate: a customer's request for help, from opening to closing.
//!
//! Statuses: `open` -> `investigating` <-> `waiting_for_customer` -> `resolved` -> `closed`,
//! with `resolved` -> `investigating` when the customer side replies within the reopen
//! window, and `waiting_for_customer` -> `resolved` automatically (by the system) after the
//! auto-resolve duration. Timed rules are judged from the case's own event times.

mod aggregate;
mod commands;
mod error;
mod events;
mod policy;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

pub use aggregate::{normalize_email, CaseStatus, Escalation, SupportCase, MAX_TEXT};
pub use commands::*;
pub use error::CaseError;
pub use events::*;
pub use policy::{human_duration, CasePolicy};

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
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(CaseOpenedV1)]
}

/// `CaseOpened` 1.0 -> 2.0. A 1.0 opening had no entitlement, participants, product version,
/// phone, consent or follow-up link, and its priority was its impact level.
struct CaseOpenedV1;

impl EventUpcaster for CaseOpenedV1 {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "CaseOpened" && event_version == "1.0"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        if let Value::Object(payload) = &mut event.payload {
            let impact = payload.get("impact").cloned().unwrap_or(Value::from(3));
            payload.entry("priority").or_insert(impact);
            for field in [
                "product_version",
                "entitlement_number",
                "subscription_id",
                "phone",
                "follow_up_of",
            ] {
                payload.entry(field).or_insert(Value::Null);
            }
            payload
                .entry("participants")
                .or_insert(Value::Array(Vec::new()));
            payload
                .entry("data_access_consent")
                .or_insert(Value::Bool(false));
        }
        event.event_version = events::CASE_OPENED_VERSION.to_string();
        event
    }
}
