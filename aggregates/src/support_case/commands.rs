use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::Visibility;
use crate::Actor;

/// Everything a caller may ask of a support case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SupportCaseCommand {
    Open(OpenCase),
    Comment(AddComment),
}

/// Open a case. The id (UUID v7) and the human key (`CASE-1042`, from a database sequence)
/// are allocated by the caller so the domain stays free of IO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenCase {
    pub case_id: Uuid,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub product: String,
    pub summary: String,
    pub description: String,
    /// 1 (critical) to 4 (low).
    pub impact: u8,
    pub opened_by: Actor,
}

/// Add a comment, public (seen by the customer side) or internal (staff only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddComment {
    pub comment_id: Uuid,
    pub author: Actor,
    pub body: String,
    pub visibility: Visibility,
}
