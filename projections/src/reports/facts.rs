//! The fact rows of the reports: one per case and one per subscription (the counters are
//! computed from them, medians are taken over them), and one per cancellation. Separate so that
//! the fold and the counters share them without depending on each other.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subdesk_aggregates::subscription::SubscriptionStatus;
use subdesk_aggregates::support_case::ResolutionClock;
use uuid::Uuid;

/// One row of `report_case_facts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFacts {
    pub case_id: Uuid,
    pub org_id: String,
    pub product: String,
    /// `technical`, `billing` or `account`.
    pub request_type: String,
    pub priority: i16,
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub first_response_due: DateTime<Utc>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub first_response_seconds: Option<i64>,
    pub first_response_breached: Option<bool>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_seconds: Option<i64>,
    pub auto_resolved: bool,
    pub auto_resolutions: i32,
    pub reopened: i32,
    pub closed_at: Option<DateTime<Utc>>,
    /// The resolution clock's target and the business time it counted (null for cases opened
    /// before it existed); once resolved, the business time to resolve without the waiting.
    pub resolution_target_seconds: Option<i64>,
    pub resolution_elapsed_seconds: Option<i64>,
    /// The running next-reply clock's due time, and the clocks met and breached so far (a
    /// reply after the due time, or a resolution past it without a reply).
    pub next_reply_due: Option<DateTime<Utc>>,
    pub next_replies_met: i32,
    pub next_replies_breached: i32,
    /// The stream version of the last event that changed a fact (events that change none,
    /// such as internal notes, are skipped before any SQL: see `changes_no_fact`).
    pub version: i64,
}

impl CaseFacts {
    /// The resolution clock as an event left it.
    pub(super) fn set_resolution(&mut self, clock: Option<ResolutionClock>) {
        if let Some(clock) = clock {
            self.resolution_target_seconds = Some(clock.target_seconds);
            self.resolution_elapsed_seconds = Some(clock.elapsed_seconds);
        }
    }

    /// The running next-reply clock ends at `at`: met or breached (a resolution before its
    /// due time without a reply judges nothing).
    pub(super) fn end_next_reply(&mut self, at: DateTime<Utc>, replied: bool) {
        if let Some(due) = self.next_reply_due.take() {
            if at > due {
                self.next_replies_breached += 1;
            } else if replied {
                self.next_replies_met += 1;
            }
        }
    }
}

/// One row of `report_subscription_facts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionFacts {
    pub subscription_id: Uuid,
    pub org_id: String,
    pub partner_id: Option<String>,
    pub product: String,
    pub plan: String,
    pub status: String,
    pub seats: i32,
    pub term_end: DateTime<Utc>,
    pub auto_renew: bool,
    pub version: i64,
}

impl SubscriptionFacts {
    pub(super) fn in_force(&self) -> bool {
        self.status == SubscriptionStatus::Active.as_str()
            || self.status == SubscriptionStatus::NonRenewing.as_str()
    }
}

/// One row of `report_cancellations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CancellationRow {
    pub(super) subscription_id: Uuid,
    pub(super) sequence: i64,
    pub(super) org_id: String,
    pub(super) partner_id: Option<String>,
    pub(super) product: String,
    pub(super) plan: String,
    pub(super) seats: i32,
    pub(super) effective: &'static str,
    pub(super) effective_at: DateTime<Utc>,
    pub(super) reason: String,
}
