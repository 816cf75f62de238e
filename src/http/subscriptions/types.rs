//! The request and response types of the subscription routes (what `/openapi.json`
//! describes).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subdesk_aggregates::subscription::{
    CancelEffective, Channel, Subscription, SubscriptionStatus,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::command::Receipt;
use crate::read::subscriptions as read;

/// The answer to a subscription command.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "entitlement_number": "E-4K2M-9QXT-7ZP3",
    "status": "active", "version": 2, "position": 42
}))]
pub struct SubscriptionReceipt {
    pub id: String,
    pub entitlement_number: String,
    #[schema(schema_with = crate::schema::subscription_status)]
    pub status: SubscriptionStatus,
    pub version: i64,
    pub position: i64,
}

pub(super) fn subscription_receipt(
    subscription: &Subscription,
    receipt: Receipt,
) -> SubscriptionReceipt {
    SubscriptionReceipt {
        id: receipt.id,
        entitlement_number: subscription.entitlement_number.clone(),
        status: subscription.status,
        version: receipt.version,
        position: receipt.position,
    }
}

/// The answer to adding an app: the app's own id and entitlement number.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "app_id": "0193a8f3-0c1d-7e55-8a4b-5d0c1e2f3a4b",
    "entitlement_number": "E-7PQR-2M4K-XZ9T", "status": "active", "version": 3, "position": 57
}))]
pub struct AppReceipt {
    /// The subscription.
    pub id: String,
    pub app_id: Option<Uuid>,
    pub entitlement_number: Option<String>,
    #[schema(schema_with = crate::schema::app_status)]
    pub status: Option<String>,
    pub version: i64,
    pub position: i64,
}

pub(super) fn app_receipt(subscription: &Subscription, receipt: Receipt) -> AppReceipt {
    // Adding an app appends exactly one `AppSubscriptionAdded`, so the state the command
    // reached (or the one rebuilt at that version for a replay) ends with that app.
    let app = subscription.apps.last();
    AppReceipt {
        id: receipt.id,
        app_id: app.map(|a| a.app_id),
        entitlement_number: app.map(|a| a.entitlement_number.clone()),
        status: app.map(|a| a.status.as_str().to_string()),
        version: receipt.version,
        position: receipt.position,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"seats": 30}))]
pub struct SeatsRequest {
    /// More than now takes effect at once; fewer takes effect at the next renewal; the current
    /// number withdraws a scheduled reduction. 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub seats: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"gb": 10}))]
pub struct StorageRequest {
    /// Additional storage to buy, in GB (1 to 1,000,000).
    #[schema(minimum = 1, maximum = 1000000)]
    pub gb: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan": "premium"}))]
pub struct PlanRequest {
    #[schema(max_length = 255)]
    pub plan: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"auto_renew": false}))]
pub struct AutoRenewRequest {
    pub auto_renew: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"effective": "immediately", "reason": "Consolidating tools",
    "keep_products": ["jira"]}))]
pub struct CancelRequest {
    #[serde(default)]
    #[schema(schema_with = crate::schema::cancel_effective)]
    pub effective: CancelEffective,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: String,
    /// Collections only (cancelled by their partner): included products to keep; each becomes
    /// a standalone subscription once the cancellation takes effect.
    #[serde(default)]
    #[schema(max_items = 20, inline, value_type = Vec<crate::schema::ProductName>)]
    pub keep_products: Vec<String>,
}

/// A request without fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct EmptyRequest {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"site": "https://acme.atlassian.net"}))]
pub struct SiteRequest {
    /// A site URL or group path.
    #[schema(max_length = 2048)]
    pub site: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bob@acme.example"}))]
pub struct ContactRequest {
    #[schema(max_length = 254)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"app": "tempo-timesheets", "plan": "standard"}))]
pub struct AppRequest {
    #[schema(max_length = 255)]
    pub app: String,
    #[schema(max_length = 255)]
    pub plan: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"billing_account": "BA-2002"}))]
pub struct BillingAccountRequest {
    #[schema(max_length = 128)]
    pub billing_account: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 25,
    "term_start": "2026-03-01T00:00:00Z", "term_end": "2027-03-01T00:00:00Z",
    "auto_renew": true, "channel": {"kind": "partner", "partner_id": "p-cloudwise"},
    "billing_account": "BA-1001"
}))]
pub struct CreateSubscriptionRequest {
    /// The customer org; customers may leave it out (their own org).
    #[schema(max_length = 128)]
    pub org_id: Option<String>,
    #[schema(max_length = 255)]
    pub product: String,
    #[schema(max_length = 255)]
    pub plan: String,
    /// 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub seats: u32,
    /// Defaults to now; a term that starts later makes the subscription `upcoming`.
    pub term_start: Option<DateTime<Utc>>,
    /// The bill date; after `term_start` and in the future.
    pub term_end: DateTime<Utc>,
    #[serde(default = "default_true")]
    pub auto_renew: bool,
    #[schema(schema_with = crate::schema::channel)]
    pub channel: Option<Channel>,
    /// Defaults to the org id (the org's default billing account).
    #[schema(max_length = 128)]
    pub billing_account: Option<String>,
    /// Makes the subscription a collection of these products.
    #[serde(default)]
    #[schema(max_items = 20, inline, value_type = Vec<crate::schema::ProductName>)]
    pub included_products: Vec<String>,
}

/// A portal tab.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tab {
    /// Active and non-renewing.
    #[default]
    Active,
    Upcoming,
    /// Cancelled and expired.
    Inactive,
}

impl Tab {
    pub(super) fn statuses(self) -> Vec<String> {
        let statuses: &[SubscriptionStatus] = match self {
            Self::Active => &[SubscriptionStatus::Active, SubscriptionStatus::NonRenewing],
            Self::Upcoming => &[SubscriptionStatus::Upcoming],
            Self::Inactive => &[SubscriptionStatus::Cancelled, SubscriptionStatus::Expired],
        };
        statuses.iter().map(|s| s.as_str().to_string()).collect()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active` (active and non-renewing; the default), `upcoming`, or `inactive` (cancelled
    /// and expired).
    #[param(inline)]
    pub tab: Option<Tab>,
    /// Only this org's subscriptions (staff; customers always see only their own org).
    #[param(max_length = 128)]
    pub org_id: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (422 `invalid_cursor` for one this server did not
    /// issue).
    #[param(max_length = 256, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Answer only once the read model has applied this position (from a command response).
    pub min_position: Option<i64>,
}

/// One line of the subscription list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionSummary {
    pub id: Uuid,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: i32,
    pub status: String,
    /// The bill date.
    pub term_end: DateTime<Utc>,
    /// Whole days until the bill date, computed when read; null once ended.
    pub days_until_renewal: Option<i64>,
    pub auto_renew: bool,
    /// `direct` or `partner`.
    pub channel: String,
    pub partner_id: Option<String>,
    /// Active app subscriptions.
    pub app_count: i32,
    pub collection: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "entitlement_number": "E-4K2M-9QXT-7ZP3",
    "org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 25,
    "status": "active", "term_end": "2027-03-01T00:00:00Z", "days_until_renewal": 97,
    "auto_renew": true, "channel": "partner", "partner_id": "p-cloudwise", "app_count": 2,
    "collection": false
}], "next_cursor": null}))]
pub struct SubscriptionList {
    /// Soonest bill date first.
    pub items: Vec<SubscriptionSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A subscription as its read model shows it, with its apps.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDetail {
    #[serde(flatten)]
    pub subscription: read::SubscriptionRow,
    /// The bill date (the term end).
    pub bill_date: DateTime<Utc>,
    /// Whole days until the bill date, computed when read; null once ended.
    pub days_until_renewal: Option<i64>,
    pub apps: Vec<read::AppRow>,
}

fn default_true() -> bool {
    true
}
