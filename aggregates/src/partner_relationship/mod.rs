//! The `PartnerRelationship` aggregate: a customer org's consent that one partner (reseller)
//! reaches it, with the scopes it allows (SPEC section 1).
//!
//! One stream per org and partner, id `<org_id>/<partner_id>` ([`relationship_id`]). The org's
//! admin or a staff admin grants it (or changes its scopes); the org's side, staff or the
//! partner itself ends it; it may be granted again later. A partner reaches an org only while
//! its relationship is active, and then only with the scopes both its token and the
//! relationship allow. Who may issue which command is decided at the edge; the aggregate
//! decides what the relationship's state allows.
//!
//! Files: `aggregate.rs` (the state, `handle` and `apply`), `ids.rs` (partner and stream
//! ids), `services.rs` (the clock), and the usual `commands.rs`, `events.rs`, `error.rs`.
//! This file only re-exports, so that no sibling imports from it and the modules form no
//! cycle.

mod aggregate;
mod commands;
mod error;
mod events;
mod ids;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{PartnerRelationship, RelationshipStatus};
pub use commands::{EndRelationship, GrantRelationship, PartnerRelationshipCommand};
pub use error::RelationshipError;
pub use events::{
    EndedBy, PartnerRelationshipEvent, PartnerScope, RelationshipEnded, RelationshipGranted,
    RelationshipScopesChanged, AGGREGATE_TYPE, EVENT_TYPES,
};
pub use ids::{is_valid_partner_id, relationship_id, MAX_PARTNER_ID};
pub use services::RelationshipServices;

/// Upcasters of PartnerRelationship events, oldest first.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    Vec::new()
}
