//! The read layer: every query against the read-model tables, returning typed rows (mapped by
//! column name, never by position). HTTP handlers and the dashboard call it; it knows SQL and
//! the rows, never axum or the HTTP error type, and it decides nothing about access: callers
//! pass the scope the access rules computed.
//!
//! - [`cursor`]: the one keyset cursor every list of resources pages with.
//! - [`sql`]: the dynamic SQL builder of filtered lists.
//! - [`cases`], [`subscriptions`], [`partners`]: the read models of those resources.

pub mod cases;
pub mod cursor;
pub mod partners;
pub mod reports;
pub mod sql;
pub mod subscriptions;

pub use cursor::Cursor;

use serde::de::DeserializeOwned;
use tokio_postgres::types::Json;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

/// The rows of a query whose one column is a JSON object (`SELECT to_jsonb(x) ...`), as `T`:
/// the row type names its columns, so nothing is read by position.
pub(crate) fn json_rows<T: DeserializeOwned>(
    rows: &[Row],
) -> Result<Vec<T>, tokio_postgres::Error> {
    rows.iter().map(json_row).collect()
}

/// One such row as `T`.
pub(crate) fn json_row<T: DeserializeOwned>(row: &Row) -> Result<T, tokio_postgres::Error> {
    row.try_get::<_, Json<T>>(0).map(|Json(value)| value)
}

/// The one row (or none) of such a query, as `T`.
pub(crate) async fn json_one<T: DeserializeOwned>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<T>, tokio_postgres::Error> {
    client
        .query_opt(sql, params)
        .await?
        .map(|row| json_row(&row))
        .transpose()
}
