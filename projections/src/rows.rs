//! Batch helpers for read-model tables whose rows are serde structs named like their columns.
//!
//! A projection applying a batch loads every row the batch touches with one query, folds the
//! events into them in memory, and writes them back with one statement per table. That keeps
//! a batch of thousands of events at a handful of round trips, which is what makes rebuilds
//! fast. Rows travel as JSON (`to_jsonb` out, `jsonb_populate_recordset` in), so a row struct
//! only has to use the column names as field names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use deadpool_postgres::Transaction;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::types::{Json, ToSql};

use crate::error::ProjectionError;

/// Loads the rows of `table` whose `key` column is one of `keys`.
pub async fn load<R, K>(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    keys: &[K],
) -> Result<Vec<R>, ProjectionError>
where
    R: DeserializeOwned,
    K: ToSql + Sync,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT to_jsonb(t) AS row FROM {table} t WHERE {key} = ANY($1)");
    let rows = query(tx, &sql, &[&keys]).await?;
    rows.iter()
        .map(|row| {
            let Json(value) = row.try_get::<_, Json<R>>("row")?;
            Ok(value)
        })
        .collect()
}

/// Inserts `rows` into `table`; on a conflict over `conflict` columns the row is replaced.
pub async fn upsert<R: Serialize + Sync + std::fmt::Debug>(
    tx: &Transaction<'_>,
    table: &str,
    conflict: &[&str],
    rows: &[R],
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let columns = columns(tx, table).await?;
    let updated: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| !conflict.contains(c))
        .collect();
    let set = if updated.is_empty() {
        "NOTHING".to_string()
    } else {
        format!(
            "UPDATE SET ({}) = ROW({})",
            updated.join(", "),
            updated
                .iter()
                .map(|c| format!("EXCLUDED.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let sql = format!(
        "INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1) \
         ON CONFLICT ({}) DO {set}",
        conflict.join(", ")
    );
    execute(tx, &sql, &[&Json(rows)]).await?;
    Ok(())
}

/// Appends `rows` to `table`.
pub async fn insert<R: Serialize + Sync + std::fmt::Debug>(
    tx: &Transaction<'_>,
    table: &str,
    rows: &[R],
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql =
        format!("INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1)");
    execute(tx, &sql, &[&Json(rows)]).await?;
    Ok(())
}

/// Deletes the rows of `table` whose `key` column is one of `keys`.
pub async fn delete<K: ToSql + Sync>(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    keys: &[K],
) -> Result<(), ProjectionError> {
    if keys.is_empty() {
        return Ok(());
    }
    let sql = format!("DELETE FROM {table} WHERE {key} = ANY($1)");
    execute(tx, &sql, &[&keys]).await?;
    Ok(())
}

/// Runs `sql` on a statement prepared once per connection (a read-model batch would
/// otherwise parse and plan each of its statements again, one extra round trip each).
/// Unqualified names still follow `search_path`: PostgreSQL re-plans a prepared statement
/// when the path it was planned under changes, which rebuilds rely on.
pub async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, ProjectionError> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&statement, params).await?)
}

/// Like [`execute`], for statements that return rows.
pub async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, ProjectionError> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.query(&statement, params).await?)
}

/// The column names of `table` as resolved through the current `search_path`. The shape of a
/// read-model table is fixed by migrations (and copied by rebuilds), so it is asked once.
async fn columns(tx: &Transaction<'_>, table: &str) -> Result<Arc<[String]>, ProjectionError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<[String]>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = lock(cache).get(table) {
        return Ok(Arc::clone(found));
    }
    let row = tx
        .query_one(
            "SELECT coalesce(array_agg(attname::text ORDER BY attnum), '{}') AS names \
               FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &[&table],
        )
        .await?;
    let names: Vec<String> = row.try_get("names")?;
    let names: Arc<[String]> = names.into();
    lock(cache).insert(table.to_string(), Arc::clone(&names));
    Ok(names)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
