//! Reads of the entitlement contract (migration V5) that cases and access checks rely on.
//! The `subscriptions` projection keeps the tables; everything here only reads them.

use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A support entitlement: a subscription's (or an app's) number and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlement {
    pub number: String,
    pub subscription_id: Uuid,
    pub app_id: Option<Uuid>,
    pub org_id: String,
    pub product: String,
    pub status: String,
    pub partner_id: Option<String>,
}

impl Entitlement {
    /// Whether support may be requested under it: the contract says active or non-renewing.
    pub fn supports_cases(&self) -> bool {
        matches!(self.status.as_str(), "active" | "non_renewing")
    }

    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            number: row.try_get("number")?,
            subscription_id: row.try_get("subscription_id")?,
            app_id: row.try_get("app_id")?,
            org_id: row.try_get("org_id")?,
            product: row.try_get("product")?,
            status: row.try_get("status")?,
            partner_id: row.try_get("partner_id")?,
        })
    }
}

const COLUMNS: &str = "number, subscription_id, app_id, org_id, product, status, partner_id";

pub async fn by_number(
    client: &impl GenericClient,
    number: &str,
) -> Result<Option<Entitlement>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM entitlements WHERE number = $1");
    client
        .query_opt(&sql, &[&number.trim().to_ascii_uppercase()])
        .await?
        .map(|row| Entitlement::from_row(&row))
        .transpose()
}

/// The subscription's own entitlement (not its apps').
pub async fn by_subscription(
    client: &impl GenericClient,
    subscription_id: Uuid,
) -> Result<Option<Entitlement>, tokio_postgres::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM entitlements WHERE subscription_id = $1 AND app_id IS NULL");
    client
        .query_opt(&sql, &[&subscription_id])
        .await?
        .map(|row| Entitlement::from_row(&row))
        .transpose()
}
