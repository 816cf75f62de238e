//! The `PartnerRelationship` aggregate: a customer org's consent that one partner (reseller)
//! reaches it, with the scopes it allows (SPEC section 1).
//!
//! One stream per org and partner, id `<org_id>/<partner_id>` ([`relationship_id`]). The org's
//! admin or a staff admin grants it (or changes its scopes); the org's side, staff or the
//! partner itself ends it; it may be granted again later. A partner reaches an org only while
//! its relationship is active, and then only with the scopes both its token and the
//! relationship allow. Who may issue which command is decided at the edge; the aggregate
//! decides what the relationship's state allows.

mod aggregate;
mod commands;
mod error;
mod events;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use aggregate::{PartnerRelationship, RelationshipStatus};
pub use commands::{EndRelationship, GrantRelationship, PartnerRelationshipCommand};
pub use error::RelationshipError;
pub use events::{
    EndedBy, PartnerRelationshipEvent, PartnerScope, RelationshipEnded, RelationshipGranted,
    RelationshipScopesChanged, EVENT_TYPES,
};

use crate::Clock;

/// `aggregate_type` of every PartnerRelationship event in the store.
pub const AGGREGATE_TYPE: &str = "PartnerRelationship";

/// Longest partner id: one DNS label.
pub const MAX_PARTNER_ID: usize = 63;

/// The stream id of the relationship between `org_id` and `partner_id`. Partner ids never
/// contain `/`, so the id splits back unambiguously at its last `/`.
pub fn relationship_id(org_id: &str, partner_id: &str) -> String {
    format!("{org_id}/{partner_id}")
}

/// Whether `id` is a partner id: a domain-like name of 1 to 63 characters from `[a-z0-9-]`,
/// neither starting nor ending with `-`.
pub fn is_valid_partner_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PARTNER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// What a relationship needs from outside the domain: the time.
#[derive(Debug, Clone)]
pub struct RelationshipServices {
    pub clock: Arc<dyn Clock>,
}

impl RelationshipServices {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

/// Upcasters of PartnerRelationship events, oldest first.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    Vec::new()
}
