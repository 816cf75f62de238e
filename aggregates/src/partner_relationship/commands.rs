//! What can be asked of a partner relationship.

use serde::{Deserialize, Serialize};

use super::events::PartnerScope;
use crate::Actor;

/// Everything that can be asked of a partner relationship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartnerRelationshipCommand {
    /// Grant the relationship, or change the scopes of the active one.
    Grant(GrantRelationship),
    /// End the active relationship.
    End(EndRelationship),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRelationship {
    pub org_id: String,
    pub partner_id: String,
    /// At least one; duplicates are ignored.
    pub scopes: Vec<PartnerScope>,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndRelationship {
    pub by: Actor,
}
