//! The reports as they are answered.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Period;

/// Open cases in one status at one priority.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenCell {
    #[schema(schema_with = crate::schema::case_status)]
    pub status: String,
    pub priority: i16,
    pub cases: i64,
}

/// Cases not resolved or closed, now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenCases {
    pub total: i64,
    /// Every status (open, investigating, waiting_for_customer) x priority (1..4), zeros
    /// included, in that order.
    pub cells: Vec<OpenCell>,
}

impl OpenCases {
    pub fn count(&self, status: &str, priority: i16) -> i64 {
        self.cells
            .iter()
            .find(|c| c.status == status && c.priority == priority)
            .map_or(0, |c| c.cases)
    }
}

/// Case activity of one day (UTC), by the events' own times.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseDay {
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    pub opened: i64,
    /// Resolutions, manual and automatic (a case resolved again after a reopening counts
    /// again).
    pub resolved: i64,
    /// `CaseAutoResolved` events: cases resolved by the system after waiting for the customer.
    pub auto_resolved: i64,
}

/// Case activity of one product in the period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductCases {
    pub product: String,
    pub opened: i64,
    pub resolved: i64,
    pub auto_resolved: i64,
}

/// Cases of one request type opened in the period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestTypeCases {
    #[schema(schema_with = crate::schema::request_type)]
    pub request_type: String,
    pub opened: i64,
}

/// Case activity over the whole period.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CaseTotals {
    pub opened: i64,
    pub resolved: i64,
    pub auto_resolved: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "period": {"from": "2026-03-01", "to": "2026-03-02"},
    "generated_at": "2026-03-02T12:00:00Z",
    "open": {"total": 3, "cells": [
        {"status": "open", "priority": 1, "cases": 1},
        {"status": "open", "priority": 2, "cases": 0},
        {"status": "waiting_for_customer", "priority": 3, "cases": 2}]},
    "per_day": [
        {"day": "2026-03-01", "opened": 4, "resolved": 1, "auto_resolved": 0},
        {"day": "2026-03-02", "opened": 2, "resolved": 3, "auto_resolved": 1}],
    "by_product": [{"product": "jira-software", "opened": 6, "resolved": 4, "auto_resolved": 1}],
    "by_request_type": [{"request_type": "technical", "opened": 5},
        {"request_type": "billing", "opened": 1}, {"request_type": "account", "opened": 0}],
    "totals": {"opened": 6, "resolved": 4, "auto_resolved": 1}
}))]
pub struct CasesReport {
    pub period: Period,
    /// When the report was read (the open cases are as of then).
    pub generated_at: DateTime<Utc>,
    /// Now, whatever the period.
    pub open: OpenCases,
    /// Every day of the period, zeros included.
    pub per_day: Vec<CaseDay>,
    /// Products with activity in the period, most cases opened first.
    pub by_product: Vec<ProductCases>,
    /// Every request type (technical, billing, account), zeros included.
    pub by_request_type: Vec<RequestTypeCases>,
    pub totals: CaseTotals,
}

/// First response and resolution for one priority (or all, `priority` null).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct SlaRow {
    /// 1 (critical) to 4 (low), the level the case is worked at now; null for all.
    pub priority: Option<i16>,
    /// The first-response target of the level, in seconds (null for all).
    pub target_seconds: Option<i64>,
    /// Cases opened in the period.
    pub opened: i64,
    /// Of those, answered by support.
    pub responded: i64,
    /// Answered within the target.
    pub met: i64,
    /// Answered late, or not answered and past the due time (the clock stops at the
    /// resolution).
    pub breached: i64,
    /// Not answered, not resolved, not due yet.
    pub awaiting_response: i64,
    /// `met / (met + breached)`; null when neither.
    pub attainment: Option<f64>,
    /// Median time from opening to support's first public answer, in seconds.
    pub median_first_response_seconds: Option<f64>,
    /// Cases whose (latest) resolution fell in the period and that stayed resolved.
    pub resolved: i64,
    /// Median time from opening to that resolution, in seconds.
    pub median_resolution_seconds: Option<f64>,
    /// Next-reply clocks of the cases opened in the period: met (support replied in time),
    /// and breached (replied late, resolved past the due time without a reply, or overdue
    /// now).
    pub next_replies_met: i64,
    pub next_replies_breached: i64,
    /// `next_replies_met / (met + breached)`; null when neither.
    pub next_reply_attainment: Option<f64>,
    /// The resolution target of the level, in business days of each org's calendar (null for
    /// all).
    pub resolution_target_days: Option<i64>,
    /// Of the cases resolved in the period (with a resolution clock): resolved within the
    /// target, and past it.
    pub resolutions_met: i64,
    pub resolutions_breached: i64,
    /// `resolutions_met / (met + breached)`; null when neither.
    pub resolution_attainment: Option<f64>,
    /// Median business time to resolve, without the time spent waiting for the customer, in
    /// seconds (cases with a resolution clock).
    pub median_resolution_business_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "period": {"from": "2026-03-01", "to": "2026-03-30"},
    "generated_at": "2026-03-30T12:00:00Z",
    "priorities": [
        {"priority": 1, "target_seconds": 3600, "opened": 4, "responded": 4, "met": 3,
         "breached": 1, "awaiting_response": 0, "attainment": 0.75,
         "median_first_response_seconds": 1800.0, "resolved": 3,
         "median_resolution_seconds": 86400.0, "next_replies_met": 2,
         "next_replies_breached": 0, "next_reply_attainment": 1.0, "resolution_target_days": 1,
         "resolutions_met": 3, "resolutions_breached": 0, "resolution_attainment": 1.0,
         "median_resolution_business_seconds": 43200.0},
        {"priority": 2, "target_seconds": 14400, "opened": 0, "responded": 0, "met": 0,
         "breached": 0, "awaiting_response": 0, "attainment": null,
         "median_first_response_seconds": null, "resolved": 0,
         "median_resolution_seconds": null, "next_replies_met": 0,
         "next_replies_breached": 0, "next_reply_attainment": null,
         "resolution_target_days": 3, "resolutions_met": 0, "resolutions_breached": 0,
         "resolution_attainment": null, "median_resolution_business_seconds": null}],
    "overall": {"priority": null, "target_seconds": null, "opened": 4, "responded": 4,
        "met": 3, "breached": 1, "awaiting_response": 0, "attainment": 0.75,
        "median_first_response_seconds": 1800.0, "resolved": 3,
        "median_resolution_seconds": 86400.0, "next_replies_met": 2,
        "next_replies_breached": 0, "next_reply_attainment": 1.0, "resolution_target_days": null,
        "resolutions_met": 3, "resolutions_breached": 0, "resolution_attainment": 1.0,
        "median_resolution_business_seconds": 43200.0}
}))]
pub struct SlaReport {
    pub period: Period,
    /// Breaches of unanswered cases are judged as of this time.
    pub generated_at: DateTime<Utc>,
    /// Priorities 1 to 4, in order, zeros included.
    pub priorities: Vec<SlaRow>,
    pub overall: SlaRow,
}

/// Subscriptions in force in one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveRow {
    pub product: String,
    pub plan: String,
    /// The selling partner; null for direct subscriptions.
    pub partner_id: Option<String>,
    pub subscriptions: i64,
    pub seats: i64,
}

/// Subscriptions in force grouped by one dimension.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveGroup {
    /// The product, plan, or partner (`direct` for direct subscriptions).
    pub key: String,
    pub subscriptions: i64,
    pub seats: i64,
}

/// Subscriptions in force now (active and non-renewing).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveSubscriptions {
    pub subscriptions: i64,
    pub seats: i64,
    /// By product, plan and partner.
    pub rows: Vec<ActiveRow>,
    pub by_product: Vec<ActiveGroup>,
    pub by_plan: Vec<ActiveGroup>,
    pub by_partner: Vec<ActiveGroup>,
}

/// One subscription whose bill date is near.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Renewal {
    pub subscription_id: Uuid,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub partner_id: Option<String>,
    pub seats: i32,
    /// The bill date.
    pub term_end: DateTime<Utc>,
    /// Off: it expires at the bill date unless auto-renew is turned back on.
    pub auto_renew: bool,
}

/// Active subscriptions whose bill date falls in the next 30 days.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RenewalsDue {
    pub window_days: i64,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub subscriptions: i64,
    pub seats: i64,
    /// Of those, with auto-renew on.
    pub auto_renew: i64,
    /// The first 100, soonest first.
    pub items: Vec<Renewal>,
}

/// Cancellations that took effect in one month (UTC).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthCancellations {
    /// `YYYY-MM`.
    #[schema(example = "2026-03")]
    pub month: String,
    pub cancellations: i64,
    /// Seats the cancelled subscriptions had.
    pub seats: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "period": {"from": "2026-01-01", "to": "2026-03-30"},
    "generated_at": "2026-03-30T12:00:00Z",
    "active": {"subscriptions": 2, "seats": 35,
        "rows": [{"product": "jira-software", "plan": "standard", "partner_id": "p-cloudwise",
                  "subscriptions": 2, "seats": 35}],
        "by_product": [{"key": "jira-software", "subscriptions": 2, "seats": 35}],
        "by_plan": [{"key": "standard", "subscriptions": 2, "seats": 35}],
        "by_partner": [{"key": "p-cloudwise", "subscriptions": 2, "seats": 35}]},
    "renewals_due": {"window_days": 30, "from": "2026-03-30T12:00:00Z",
        "until": "2026-04-29T12:00:00Z", "subscriptions": 1, "seats": 10, "auto_renew": 1,
        "items": [{"subscription_id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "org_id": "acme",
                   "product": "jira-software", "plan": "standard", "partner_id": "p-cloudwise",
                   "seats": 10, "term_end": "2026-04-12T00:00:00Z", "auto_renew": true}]},
    "cancellations_per_month": [
        {"month": "2026-01", "cancellations": 0, "seats": 0},
        {"month": "2026-02", "cancellations": 1, "seats": 25},
        {"month": "2026-03", "cancellations": 0, "seats": 0}]
}))]
pub struct SubscriptionsReport {
    pub period: Period,
    /// Renewals due are counted from this time.
    pub generated_at: DateTime<Utc>,
    /// Now, whatever the period.
    pub active: ActiveSubscriptions,
    /// From now, whatever the period.
    pub renewals_due: RenewalsDue,
    /// Every month the period touches, zeros included, by when the cancellation took effect.
    pub cancellations_per_month: Vec<MonthCancellations>,
}
