use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Actor;

/// Facts of a support case's life. A public contract: past tense, never renamed; a change
/// of shape bumps `event_version` and comes with an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SupportCaseEvent {
    CaseOpened(CaseOpened),
    CommentAdded(CommentAdded),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseOpened {
    pub case_id: Uuid,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub product: String,
    pub summary: String,
    pub description: String,
    pub impact: u8,
    pub opened_by: Actor,
    pub opened_at: DateTime<Utc>,
    /// When the first response is due under the SLA policy in force at opening.
    pub first_response_due: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Public,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentAdded {
    pub comment_id: Uuid,
    pub author: Actor,
    pub body: String,
    pub visibility: Visibility,
    pub at: DateTime<Utc>,
}

impl SupportCaseEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CaseOpened(_) => "CaseOpened",
            Self::CommentAdded(_) => "CommentAdded",
        }
    }
}

impl DomainEvent for SupportCaseEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
