//! Who issued a command, as far as domain rules care.
//!
//! Access control (who may *see* what) lives at the HTTP edge; the domain only needs the role
//! for rules that depend on it, such as "only agents write internal comments" or "a customer
//! reply while waiting flips the case back to investigating".

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    Customer,
    Partner,
    Agent,
    Admin,
    Auditor,
    System,
}

impl ActorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Partner => "partner",
            Self::Agent => "agent",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
            Self::System => "system",
        }
    }

    /// Support staff: their public comments answer the customer, their internal ones stay inside.
    pub fn is_staff(self) -> bool {
        matches!(self, Self::Agent | Self::Admin)
    }

    /// The customer side of a case: the requester's org and the partner acting for it.
    pub fn is_customer_side(self) -> bool {
        matches!(self, Self::Customer | Self::Partner)
    }
}

impl std::fmt::Display for ActorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ActorRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "customer" => Self::Customer,
            "partner" => Self::Partner,
            "agent" => Self::Agent,
            "admin" => Self::Admin,
            "auditor" => Self::Auditor,
            "system" => Self::System,
            other => return Err(format!("unknown role `{other}`")),
        })
    }
}

/// The author of a command: a user id (an e-mail for people, `system` for the scheduler) and
/// the role they acted in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub role: ActorRole,
}

impl Actor {
    pub fn new(id: impl Into<String>, role: ActorRole) -> Self {
        Self {
            id: id.into(),
            role,
        }
    }

    pub fn system() -> Self {
        Self::new("system", ActorRole::System)
    }
}
