//! The rows of the tables the case projection owns (`case_view`, `case_timeline`,
//! `case_attachments`), as the fold holds them in memory. Separate because the HTTP edge reads
//! `CaseRow` back, and the fold and the outbox both read it without depending on each other.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subdesk_aggregates::support_case::{CaseStatus, ResolutionClock};
use uuid::Uuid;

/// One row of `case_view`; the HTTP edge reads rows back into it (`to_jsonb`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRow {
    pub id: Uuid,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub opened_by: String,
    pub opened_by_role: String,
    pub product: String,
    pub product_version: Option<String>,
    pub entitlement_number: Option<String>,
    pub subscription_id: Option<Uuid>,
    pub summary: String,
    pub description: String,
    pub impact: i16,
    pub priority: i16,
    pub status: String,
    pub phone: Option<String>,
    pub data_access: bool,
    pub follow_up_of: Option<Uuid>,
    /// `technical`, `billing` or `account`.
    pub request_type: String,
    pub assignee: Option<String>,
    pub participants: Vec<String>,
    pub escalation: String,
    pub escalation_reason: Option<String>,
    pub escalation_requested_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    pub first_response_due: DateTime<Utc>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub first_response_breached: Option<bool>,
    /// When the first-response warning is due (`SlaTargetSet`; null for cases opened before
    /// targets were events), and when the warning and the breach were recorded.
    pub first_response_warning_at: Option<DateTime<Utc>>,
    pub sla_warned_at: Option<DateTime<Utc>>,
    pub sla_breached_at: Option<DateTime<Utc>>,
    /// The running next-reply clock's due and warning times (null while none runs), and when
    /// its last warning and breach were recorded.
    pub next_reply_due: Option<DateTime<Utc>>,
    pub next_reply_warning_at: Option<DateTime<Utc>>,
    pub next_reply_warned_at: Option<DateTime<Utc>>,
    pub next_reply_breached_at: Option<DateTime<Utc>>,
    /// When the last next-reply clock started, and when support's reply met it (its due time
    /// stays after the reply; both are null once the case is resolved without one).
    pub next_reply_started_at: Option<DateTime<Utc>>,
    pub next_reply_met_at: Option<DateTime<Utc>>,
    /// The resolution clock as the last event left it (see `ResolutionClock`; all null for
    /// cases opened before it existed), and when its warning and breach were recorded.
    pub resolution_target_seconds: Option<i64>,
    pub resolution_elapsed_seconds: Option<i64>,
    pub resolution_running_since: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub resolution_warning_at: Option<DateTime<Utc>>,
    pub resolution_warned_at: Option<DateTime<Utc>>,
    pub resolution_breached_at: Option<DateTime<Utc>>,
    pub waiting_since: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub auto_resolved: bool,
    pub reopened: i32,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    pub last_public_activity_at: DateTime<Utc>,
    pub public_comments: i32,
    pub internal_comments: i32,
    pub attachments: i32,
    pub version: i64,
}

impl CaseRow {
    /// Who receives the customer-facing e-mails of this case: the requester and every
    /// participant, lower case, each once.
    pub(super) fn customer_recipients(&self) -> Vec<String> {
        let mut recipients = vec![self.requester.trim().to_lowercase()];
        for participant in &self.participants {
            if !recipients.contains(participant) {
                recipients.push(participant.clone());
            }
        }
        recipients
    }

    pub(super) fn set_status(&mut self, status: CaseStatus) {
        self.status = status.as_str().to_string();
    }

    /// The resolution clock as an event left it (nothing changes for an event without one).
    pub(super) fn set_resolution(&mut self, clock: Option<ResolutionClock>) {
        let Some(clock) = clock else { return };
        self.resolution_target_seconds = Some(clock.target_seconds);
        self.resolution_elapsed_seconds = Some(clock.elapsed_seconds);
        self.resolution_running_since = clock.running_since;
        self.resolution_due = clock.due;
        self.resolution_warning_at = clock.warning_at;
    }

    /// The next-reply clock stopped without a reply (the case was resolved).
    pub(super) fn drop_next_reply(&mut self) {
        if self.next_reply_met_at.is_none() {
            self.next_reply_started_at = None;
            self.next_reply_due = None;
            self.next_reply_warning_at = None;
        }
    }
}

/// One row of `case_timeline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineRow {
    pub case_id: Uuid,
    pub sequence: i64,
    pub kind: String,
    pub actor_id: String,
    pub actor_role: String,
    pub visibility: String,
    pub body: Option<String>,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// One row of `case_attachments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
    pub added_by: String,
    pub added_by_role: String,
    pub at: DateTime<Utc>,
}
