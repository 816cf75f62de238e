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
        crate::org_calendar::AGGREGATE_TYPE => crate::org_calendar::upcasters(),
        _ => Vec::new(),
    }
}

/// What this binary knows of a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knowledge {
    /// A type and version this binary reads (directly or through an upcaster).
    Known,
    /// An aggregate type this binary has never heard of (a newer release's): projections
    /// that do not follow it ignore it.
    ForeignAggregate,
    /// An aggregate this binary knows, but an event type or a version it does not: written by
    /// a newer release. A projection must not skip it, nor guess at it.
    Unknown,
}

/// Whether this binary can read an event of `event_type` at `event_version` in a stream of
/// `aggregate_type`.
pub fn knowledge(aggregate_type: &str, event_type: &str, event_version: &str) -> Knowledge {
    let types = match aggregate_type {
        crate::support_case::AGGREGATE_TYPE => crate::support_case::EVENT_TYPES,
        crate::subscription::AGGREGATE_TYPE => crate::subscription::EVENT_TYPES,
        crate::partner_relationship::AGGREGATE_TYPE => crate::partner_relationship::EVENT_TYPES,
        crate::org_calendar::AGGREGATE_TYPE => crate::org_calendar::EVENT_TYPES,
        _ => return Knowledge::ForeignAggregate,
    };
    let Some((_, current)) = types.iter().find(|(name, _)| *name == event_type) else {
        return Knowledge::Unknown;
    };
    if *current == event_version
        || upcasters_for(aggregate_type)
            .iter()
            .any(|u| u.can_upcast(event_type, event_version))
    {
        Knowledge::Known
    } else {
        Knowledge::Unknown
    }
}

/// The aggregate types this binary knows.
pub const AGGREGATE_TYPES: [&str; 4] = [
    crate::support_case::AGGREGATE_TYPE,
    crate::subscription::AGGREGATE_TYPE,
    crate::partner_relationship::AGGREGATE_TYPE,
    crate::org_calendar::AGGREGATE_TYPE,
];

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    use super::*;

    /// The variant names serde knows for an event enum, from its own refusal of a made-up one.
    fn variants<E: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let error = serde_json::from_str::<E>(r#"{"type": "NoSuchEvent"}"#)
            .expect_err("no such variant")
            .to_string();
        let listed = error
            .split("expected ")
            .nth(1)
            .unwrap_or_default()
            .trim_start_matches("one of ")
            .split(" at line")
            .next()
            .unwrap_or_default();
        let mut names: Vec<String> = listed
            .split(", ")
            .map(|n| n.trim().trim_matches('`').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        names
    }

    fn listed(types: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<String> = types.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn every_event_type_of_every_aggregate_is_listed_with_its_version() {
        assert_eq!(
            variants::<crate::support_case::SupportCaseEvent>(),
            listed(crate::support_case::EVENT_TYPES)
        );
        assert_eq!(
            variants::<crate::subscription::SubscriptionEvent>(),
            listed(crate::subscription::EVENT_TYPES)
        );
        assert_eq!(
            variants::<crate::partner_relationship::PartnerRelationshipEvent>(),
            listed(crate::partner_relationship::EVENT_TYPES)
        );
        assert_eq!(
            variants::<crate::org_calendar::OrgCalendarEvent>(),
            listed(crate::org_calendar::EVENT_TYPES)
        );
    }

    #[test]
    fn unknown_types_and_newer_versions_are_unknown_and_old_upcastable_ones_known() {
        assert_eq!(
            knowledge("SupportCase", "CaseOpened", "2.1"),
            Knowledge::Known
        );
        assert_eq!(
            knowledge("SupportCase", "CaseOpened", "2.0"),
            Knowledge::Known
        );
        assert_eq!(
            knowledge("SupportCase", "CaseOpened", "1.0"),
            Knowledge::Known
        );
        assert_eq!(
            knowledge("SupportCase", "CaseOpened", "3.0"),
            Knowledge::Unknown
        );
        assert_eq!(
            knowledge("SupportCase", "CaseMerged", "1.0"),
            Knowledge::Unknown
        );
        assert_eq!(
            knowledge("Subscription", "SeatsIncreased", "1.0"),
            Knowledge::Known
        );
        assert_eq!(
            knowledge("Invoice", "InvoiceIssued", "1.0"),
            Knowledge::ForeignAggregate
        );
    }
}
