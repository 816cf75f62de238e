//! The `SupportCase` aggregate: a customer's request for help, from opening to closing.
//!
//! Statuses: `open` -> `investigating` <-> `waiting_for_customer` -> `resolved` -> `closed`,
//! with `resolved` -> `investigating` when the customer side replies within the reopen
//! window, and `waiting_for_customer` -> `resolved` automatically (by the system) after the
//! auto-resolve duration. Timed rules are judged from the case's own event times.
//!
//! Files: `status.rs` (status and escalation values), `state.rs` (the write-side state),
//! `aggregate.rs` (`handle` and `apply`), the command handlers by theme (`lifecycle.rs`,
//! `comments.rs`, `participants.rs`, `attachments.rs`, `escalation.rs`, `sla.rs`) and the checks they
//! share (`checks.rs`). Dependencies run one way, from the aggregate through the handlers to
//! the state, the events and the values; this file only re-exports and upcasts.

mod aggregate;
mod attachments;
mod checks;
mod commands;
mod comments;
mod error;
mod escalation;
mod events;
mod lifecycle;
mod participants;
mod policy;
mod services;
mod sla;
mod state;
mod status;
#[cfg(test)]
mod tests;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

pub use checks::{normalize_email, MAX_TEXT};
pub use commands::*;
pub use error::CaseError;
pub use events::*;
pub use policy::{human_duration, CasePolicy};
pub use services::CaseServices;
pub use state::SupportCase;
pub use status::{CaseStatus, Escalation};

/// Upcasters of SupportCase events, oldest first.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    let fixed: Vec<Box<dyn EventUpcaster>> = vec![
        Box::new(CaseOpenedV1),
        Box::new(CaseOpenedV2),
        // 2.1 -> current: no warning time (it came with SLA warnings), no resolution clock.
        Box::new(NewOptionalField {
            event_type: "CaseOpened",
            from: "2.1",
            to: events::CASE_OPENED_VERSION,
            field: "first_response_warning_at",
        }),
        // 1.0 -> 1.1: no warning time.
        Box::new(NewOptionalField {
            event_type: "PriorityChanged",
            from: "1.0",
            to: events::PRIORITY_CHANGED_VERSION,
            field: "first_response_warning_at",
        }),
        // 1.0 -> 1.1: a comment before next-reply clocks started none.
        Box::new(NewOptionalField {
            event_type: "CommentAdded",
            from: "1.0",
            to: events::COMMENT_ADDED_VERSION,
            field: "next_reply",
        }),
        // Before the resolution clock: none started, paused, resumed or stopped.
        Box::new(NewOptionalField {
            event_type: "CaseOpened",
            from: "2.2",
            to: events::CASE_OPENED_VERSION,
            field: "resolution",
        }),
        Box::new(NewOptionalField {
            event_type: "PriorityChanged",
            from: "1.1",
            to: events::PRIORITY_CHANGED_VERSION,
            field: "resolution",
        }),
    ];
    fixed
        .into_iter()
        .chain(RESOLUTION_CLOCK_EVENTS.iter().map(|&event_type| {
            Box::new(NewOptionalField {
                event_type,
                from: "1.0",
                to: events::RESOLUTION_CLOCK_VERSION,
                field: "resolution",
            }) as Box<dyn EventUpcaster>
        }))
        .collect()
}

/// The 1.0 events whose 1.1 carries the resolution clock (`SlaWarningRaised` and `SlaBreached`
/// 1.1 only gained a clock to name: a `resolution` key is ignored by them).
const RESOLUTION_CLOCK_EVENTS: [&str; 7] = [
    "InvestigationStarted",
    "CustomerInfoRequested",
    "CustomerResponded",
    "CaseReopened",
    "CaseResolved",
    "SlaWarningRaised",
    "SlaBreached",
];

/// The upcaster of a version that only added an optional field: the older event gets it as
/// null (what the older version meant by leaving it out).
struct NewOptionalField {
    event_type: &'static str,
    from: &'static str,
    to: &'static str,
    field: &'static str,
}

impl EventUpcaster for NewOptionalField {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == self.event_type && event_version == self.from
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        if let Value::Object(payload) = &mut event.payload {
            payload.entry(self.field).or_insert(Value::Null);
        }
        event.event_version = self.to.to_string();
        event
    }
}

/// `CaseOpened` 2.0 -> current: every case opened before request types was a technical one.
struct CaseOpenedV2;

impl EventUpcaster for CaseOpenedV2 {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "CaseOpened" && event_version == "2.0"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        if let Value::Object(payload) = &mut event.payload {
            payload
                .entry("request_type")
                .or_insert(Value::from(events::RequestType::Technical.as_str()));
            payload
                .entry("first_response_warning_at")
                .or_insert(Value::Null);
        }
        event.event_version = events::CASE_OPENED_VERSION.to_string();
        event
    }
}

/// `CaseOpened` 1.0 -> current. A 1.0 opening had no entitlement, participants, product version,
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
            payload
                .entry("request_type")
                .or_insert(Value::from(events::RequestType::Technical.as_str()));
            payload
                .entry("first_response_warning_at")
                .or_insert(Value::Null);
        }
        event.event_version = events::CASE_OPENED_VERSION.to_string();
        event
    }
}
