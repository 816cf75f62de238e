//! The rows of the tables the subscription projection owns (`subscription_view`,
//! `subscription_apps`, and the entitlement contract: `entitlements`, `partner_customers`), as
//! the fold holds them in memory. Separate so that the outbox can describe a subscription
//! without depending on the fold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One row of `subscription_view`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ViewRow {
    pub(super) id: Uuid,
    pub(super) entitlement_number: String,
    pub(super) org_id: String,
    pub(super) product: String,
    pub(super) plan: String,
    pub(super) seats: i32,
    pub(super) scheduled_seats: Option<i32>,
    pub(super) storage_gb: i32,
    pub(super) term_start: DateTime<Utc>,
    pub(super) term_end: DateTime<Utc>,
    pub(super) auto_renew: bool,
    pub(super) channel: String,
    pub(super) partner_id: Option<String>,
    pub(super) billing_account: String,
    pub(super) site: Option<String>,
    pub(super) contacts: Vec<String>,
    pub(super) included_products: Vec<String>,
    pub(super) kept_products: Vec<String>,
    pub(super) from_collection: Option<Uuid>,
    pub(super) status: String,
    pub(super) app_count: i32,
    pub(super) cancellation_reason: Option<String>,
    pub(super) cancel_effective_at: Option<DateTime<Utc>>,
    pub(super) ended_at: Option<DateTime<Utc>>,
    pub(super) created_by: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) version: i64,
}

/// One row of `subscription_apps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AppRow {
    pub(super) app_id: Uuid,
    pub(super) subscription_id: Uuid,
    pub(super) entitlement_number: String,
    pub(super) app: String,
    pub(super) plan: String,
    pub(super) status: String,
    pub(super) cause: Option<String>,
    pub(super) added_at: DateTime<Utc>,
    pub(super) cancelled_at: Option<DateTime<Utc>>,
}

/// One row of `entitlements` (V5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EntitlementRow {
    pub(super) number: String,
    pub(super) subscription_id: Uuid,
    pub(super) app_id: Option<Uuid>,
    pub(super) org_id: String,
    pub(super) product: String,
    pub(super) status: String,
    pub(super) partner_id: Option<String>,
}
/// One row of `partner_customers` (V5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PartnerCustomerRow {
    pub(super) partner_id: String,
    pub(super) org_id: String,
    pub(super) subscriptions: i32,
}
