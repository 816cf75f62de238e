//! The events of a partner relationship: the stored public contract, the scopes and who
//! ended it, type names and versions.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::{Actor, ActorRole};

/// Facts of a partner relationship's life. A public contract: past tense, never renamed; a
/// change of shape bumps `event_version` and comes with an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PartnerRelationshipEvent {
    PartnerRelationshipGranted(RelationshipGranted),
    PartnerRelationshipScopesChanged(RelationshipScopesChanged),
    PartnerRelationshipEnded(RelationshipEnded),
}

/// What a relationship lets its partner reach of the org (intersected with the partner
/// token's own scopes). Snake case on the wire, as token scopes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerScope {
    /// See, create and change the subscriptions the partner sold to the org.
    ViewCustomers,
    /// Act on the org's cases as the org's admin may.
    AccessCases,
}

impl PartnerScope {
    pub const ALL: [PartnerScope; 2] = [Self::ViewCustomers, Self::AccessCases];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ViewCustomers => "view_customers",
            Self::AccessCases => "access_cases",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The org granted the partner a relationship (again, if an earlier one ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipGranted {
    pub org_id: String,
    pub partner_id: String,
    /// Sorted, without duplicates.
    pub scopes: Vec<PartnerScope>,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipScopesChanged {
    pub from: Vec<PartnerScope>,
    pub to: Vec<PartnerScope>,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// Which side ended a relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The org's admin.
    Customer,
    /// The partner itself.
    Partner,
    /// A staff admin (or the system).
    Staff,
}

impl EndedBy {
    pub fn of(actor: &Actor) -> Self {
        match actor.role {
            ActorRole::Customer => Self::Customer,
            ActorRole::Partner => Self::Partner,
            _ => Self::Staff,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Partner => "partner",
            Self::Staff => "staff",
        }
    }
}

/// The relationship ended: the partner reaches nothing of the org from the next request on,
/// and the subscriptions it sold to the org pass to the org's side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipEnded {
    pub org_id: String,
    pub partner_id: String,
    pub ended_by: EndedBy,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// `aggregate_type` of every PartnerRelationship event in the store.
pub const AGGREGATE_TYPE: &str = "PartnerRelationship";

/// Every event type of this aggregate with the version this binary writes: what it can
/// read (older versions are upcast). An event of another type, or of a newer version, comes
/// from a newer release; projections block on it instead of guessing.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("PartnerRelationshipGranted", "1.0"),
    ("PartnerRelationshipScopesChanged", "1.0"),
    ("PartnerRelationshipEnded", "1.0"),
];

impl PartnerRelationshipEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::PartnerRelationshipGranted(_) => "PartnerRelationshipGranted",
            Self::PartnerRelationshipScopesChanged(_) => "PartnerRelationshipScopesChanged",
            Self::PartnerRelationshipEnded(_) => "PartnerRelationshipEnded",
        }
    }
}

impl DomainEvent for PartnerRelationshipEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
