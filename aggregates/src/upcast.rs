//! Upcasting: stored events are never rewritten, so an event stored in an older shape is
//! brought to the current shape on the way out of the store (aggregate loads, projections,
//! history and export all read through here).

use cqrs_es::persist::{EventUpcaster, SerializedEvent};

/// Applies every upcaster that accepts the event, in order.
pub fn upcast(event: SerializedEvent, upcasters: &[Box<dyn EventUpcaster>]) -> SerializedEvent {
    upcasters.iter().fold(event, |event, upcaster| {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            upcaster.upcast(event)
        } else {
            event
        }
    })
}

/// The upcasters for one aggregate type (`SupportCase`, `Subscription`).
pub fn upcasters_for(aggregate_type: &str) -> Vec<Box<dyn EventUpcaster>> {
    match aggregate_type {
        crate::support_case::AGGREGATE_TYPE => crate::support_case::upcasters(),
        crate::subscription::AGGREGATE_TYPE => crate::subscription::upcasters(),
        crate::partner_relationship::AGGREGATE_TYPE => crate::partner_relationship::upcasters(),
        _ => Vec::new(),
    }
}
