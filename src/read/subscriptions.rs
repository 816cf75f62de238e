//! Reads of the `subscriptions` read model: the portal tabs' list (scoped, keyset-paged by
//! bill date), one subscription, and its apps.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::cursor::Cursor;
use super::{json_one, json_rows};

/// One subscription of a list.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListRow {
    pub id: Uuid,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: i32,
    pub status: String,
    pub term_end: DateTime<Utc>,
    pub auto_renew: bool,
    pub channel: String,
    pub partner_id: Option<String>,
    pub app_count: i32,
    pub collection: bool,
}

/// What a subscription list asks for, within the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    /// The tab's statuses.
    pub statuses: Vec<String>,
    pub org: Option<String>,
    /// Only those this partner manages.
    pub partner: Option<String>,
    /// Only these orgs (a partner's reach).
    pub orgs: Option<Vec<String>>,
}

/// Up to `limit` + 1 subscriptions matching `filter`, soonest bill date first, after `cursor`.
pub async fn list(
    client: &impl GenericClient,
    filter: &SubscriptionFilter,
    limit: i64,
    cursor: Option<Cursor>,
) -> Result<Vec<ListRow>, tokio_postgres::Error> {
    let (after_end, after_id) = cursor.map_or((None, None), |c| (Some(c.at), Some(c.id)));
    client
        .query(
            "SELECT to_jsonb(s) FROM ( \
               SELECT id, entitlement_number, org_id, product, plan, seats, status, term_end, \
                      auto_renew, channel, partner_id, app_count, \
                      jsonb_array_length(included_products) > 0 AS collection \
                 FROM subscription_view \
                WHERE status = ANY($1) \
                  AND ($2::text IS NULL OR org_id = $2) \
                  AND ($3::text IS NULL OR partner_id = $3) \
                  AND ($4::timestamptz IS NULL OR (term_end, id) > ($4, $5::uuid)) \
                  AND ($7::text[] IS NULL OR org_id = ANY($7)) \
                ORDER BY term_end, id \
                LIMIT $6) s",
            &[
                &filter.statuses,
                &filter.org,
                &filter.partner,
                &after_end,
                &after_id,
                &(limit + 1),
                &filter.orgs,
            ],
        )
        .await
        .and_then(|rows| json_rows(&rows))
}

/// One subscription as the read model has it (the detail answer shows it as it is).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[schema(as = SubscriptionFields)]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: i32,
    /// Seats from the next renewal on, when a reduction is scheduled.
    pub scheduled_seats: Option<i32>,
    /// Additional storage bought, in GB.
    pub storage_gb: i32,
    pub term_start: DateTime<Utc>,
    pub term_end: DateTime<Utc>,
    pub auto_renew: bool,
    /// `direct` or `partner`.
    pub channel: String,
    pub partner_id: Option<String>,
    pub billing_account: String,
    /// The linked site or group, once set up.
    pub site: Option<String>,
    pub contacts: Vec<String>,
    /// For a collection: its products.
    pub included_products: Vec<String>,
    /// For a cancelled collection: the products that became standalone subscriptions.
    pub kept_products: Vec<String>,
    /// For a standalone subscription split off a collection: that collection.
    pub from_collection: Option<Uuid>,
    pub status: String,
    pub cancellation_reason: Option<String>,
    /// When a scheduled cancellation takes effect (or a past one took effect).
    pub cancel_effective_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

pub async fn find(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<SubscriptionRow>, tokio_postgres::Error> {
    let sql = "SELECT to_jsonb(s) FROM subscription_view s WHERE id = $1";
    json_one(client, sql, &[&id]).await
}

/// An app subscription, as the read model has it and the detail answer shows it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[schema(as = AppDetail)]
pub struct AppRow {
    pub app_id: Uuid,
    pub entitlement_number: String,
    pub app: String,
    pub plan: String,
    /// `active` or `cancelled`.
    pub status: String,
    /// Why it was cancelled: `requested`, `subscription_cancelled`, `subscription_expired`.
    pub cause: Option<String>,
    pub added_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// The apps of subscription `id`, in the order they were added.
pub async fn apps(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Vec<AppRow>, tokio_postgres::Error> {
    client
        .query(
            "SELECT to_jsonb(a) FROM (SELECT app_id, entitlement_number, app, plan, status, \
                    cause, added_at, cancelled_at FROM subscription_apps \
              WHERE subscription_id = $1 ORDER BY added_at, app_id) a",
            &[&id],
        )
        .await
        .and_then(|rows| json_rows(&rows))
}
