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

    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            number: row.get(0),
            subscription_id: row.get(1),
            app_id: row.get(2),
            org_id: row.get(3),
            product: row.get(4),
            status: row.get(5),
            partner_id: row.get(6),
        }
    }
}

const COLUMNS: &str = "number, subscription_id, app_id, org_id, product, status, partner_id";

pub async fn by_number(
    client: &impl GenericClient,
    number: &str,
) -> Result<Option<Entitlement>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM entitlements WHERE number = $1");
    Ok(client
        .query_opt(&sql, &[&number.trim().to_ascii_uppercase()])
        .await?
        .map(|row| Entitlement::from_row(&row)))
}

/// The subscription's own entitlement (not its apps').
pub async fn by_subscription(
    client: &impl GenericClient,
    subscription_id: Uuid,
) -> Result<Option<Entitlement>, tokio_postgres::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM entitlements WHERE subscription_id = $1 AND app_id IS NULL");
    Ok(client
        .query_opt(&sql, &[&subscription_id])
        .await?
        .map(|row| Entitlement::from_row(&row)))
}
