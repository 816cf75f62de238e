//! The write-side state of one case, and the questions about it that every handler asks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::CaseError;
use super::events::{ClockStart, RequestType, ResolutionClock};
use super::status::{CaseStatus, Escalation};

/// The write-side state of one case: only what the rules (and the access checks run on the
/// loaded state) need to decide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupportCase {
    pub id: Option<Uuid>,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub product: String,
    pub summary: String,
    pub impact: u8,
    pub priority: u8,
    pub status: CaseStatus,
    pub opened_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    /// When the first-response warning is due (from the target in force).
    pub first_response_warning_at: Option<DateTime<Utc>>,
    /// Whether the warning, and the breach, of the target in force were recorded.
    pub first_response_warned: bool,
    pub first_response_breached: bool,
    /// The running next-reply clock (none while no customer-side comment awaits a reply), and
    /// whether its warning and breach were recorded.
    pub next_reply: Option<ClockStart>,
    pub next_reply_warned: bool,
    pub next_reply_breached: bool,
    /// The resolution clock (none for cases opened before it existed), and whether the
    /// warning and breach of its target in force were recorded.
    pub resolution: Option<ResolutionClock>,
    pub resolution_warned: bool,
    pub resolution_breached: bool,
    pub assignee: Option<String>,
    /// Lower-case e-mail addresses.
    pub participants: Vec<String>,
    pub escalation: Escalation,
    pub data_access: bool,
    /// Set while `waiting_for_customer`: when support asked.
    pub waiting_since: Option<DateTime<Utc>>,
    /// Set while `resolved` (and kept once `closed`).
    pub resolved_at: Option<DateTime<Utc>>,
    pub comments: u32,
    /// Attachment ids, oldest first.
    pub attachments: Vec<Uuid>,
    /// The entitlement the case was opened under, for a follow-up case after it closes.
    pub entitlement_number: Option<String>,
    pub subscription_id: Option<Uuid>,
    /// The earlier case this one follows up.
    pub follow_up_of: Option<Uuid>,
    pub request_type: RequestType,
}

impl SupportCase {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// Whether `email` follows the case as a participant.
    pub fn has_participant(&self, email: &str) -> bool {
        let email = email.trim();
        self.participants
            .iter()
            .any(|p| p.eq_ignore_ascii_case(email))
    }

    /// The live state every command but `Open` needs: opened and not closed.
    pub(super) fn ensure_live(&self) -> Result<(), CaseError> {
        if !self.exists() {
            return Err(CaseError::NotFound);
        }
        if self.status == CaseStatus::Closed {
            return Err(CaseError::Closed);
        }
        Ok(())
    }

    pub(super) fn invalid_status(&self, action: &'static str) -> CaseError {
        CaseError::InvalidStatus {
            action,
            status: self.status,
        }
    }
}
