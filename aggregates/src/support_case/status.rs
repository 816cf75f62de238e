//! Where a case stands: its status and its escalation. Plain values, shared by the state, the
//! handlers and the errors that name a status.

use serde::{Deserialize, Serialize};

/// Where a case stands. Snake case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    #[default]
    Open,
    Investigating,
    WaitingForCustomer,
    Resolved,
    Closed,
}

impl CaseStatus {
    pub const ALL: [Self; 5] = [
        Self::Open,
        Self::Investigating,
        Self::WaitingForCustomer,
        Self::Resolved,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Investigating => "investigating",
            Self::WaitingForCustomer => "waiting_for_customer",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an escalation stands: the customer side asks, support accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    #[default]
    None,
    Requested,
    Escalated,
}

impl Escalation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Requested => "requested",
            Self::Escalated => "escalated",
        }
    }
}
