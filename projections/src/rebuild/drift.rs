//! The drift check: builds a shadow up to the live checkpoint, compares it with the live tables
//! row by row, and drops it. Separate from the rebuild, which swaps its shadow in instead.

use deadpool_postgres::{Pool, Transaction};
use serde::Serialize;
use serde_json::Value;

use super::locks::{claim, exclusive};
use super::replay::replay;
use super::shadow::Shadow;
use crate::error::ProjectionError;
use crate::event::Checkpoint;
use crate::projection::Projection;

/// Rows that differ between a live table and its fresh rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct TableDrift {
    pub table: String,
    /// In the live table but not in the rebuild (wrong or stale rows).
    pub only_live: Vec<Value>,
    /// In the rebuild but not in the live table (missing or changed rows).
    pub only_rebuilt: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub projection: String,
    pub checkpoint: Checkpoint,
    pub tables: Vec<TableDrift>,
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.only_live.is_empty() && t.only_rebuilt.is_empty())
    }
}

/// At most this many differing rows are listed per table and side.
const DRIFT_ROWS: i64 = 50;
/// Compares the live tables of `projection` with a fresh rebuild up to the live checkpoint.
pub async fn check(
    pool: &Pool,
    projection: &dyn Projection,
) -> Result<DriftReport, ProjectionError> {
    let exclusive = exclusive(pool, &[projection.name()]).await?;
    let shadow = Shadow::create(pool, projection).await?;
    // The live read model lacks every event it set aside; so does the comparison's rebuild.
    let skip = {
        let client = pool.get().await?;
        crate::dead_letters::set_aside_positions(&**client, projection.name()).await?
    };
    let result = async {
        // Replay up to where the live projection is now, then finish under its claim.
        let live = live_checkpoint(pool, projection.name()).await?;
        let mut at = Checkpoint::START;
        loop {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            shadow.select(&tx).await?;
            let n = replay(&tx, projection, &mut at, Some(live), &skip).await?;
            tx.commit().await?;
            if n == 0 {
                break;
            }
        }
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        claim(&tx, projection.name()).await?;
        let live = live_checkpoint_in(&tx, projection.name()).await?;
        shadow.select(&tx).await?;
        while replay(&tx, projection, &mut at, Some(live), &skip).await? > 0 {}
        tx.batch_execute("SET LOCAL search_path TO DEFAULT").await?;
        let mut tables = Vec::new();
        for table in projection.tables() {
            tables.push(shadow.compare(&tx, table).await?);
        }
        tx.rollback().await?;
        Ok(DriftReport {
            projection: projection.name().to_string(),
            checkpoint: live,
            tables,
        })
    }
    .await;
    let dropped = shadow.drop(pool).await;
    exclusive.release().await;
    dropped?;
    result
}
async fn live_checkpoint(pool: &Pool, name: &str) -> Result<Checkpoint, ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let at = live_checkpoint_in(&tx, name).await?;
    tx.commit().await?;
    Ok(at)
}

async fn live_checkpoint_in(
    tx: &Transaction<'_>,
    name: &str,
) -> Result<Checkpoint, ProjectionError> {
    let row = tx
        .query_opt(
            "SELECT last_tx::text::bigint AS last_tx, last_position FROM projection_checkpoints \
              WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(match row {
        None => Checkpoint::START,
        Some(row) => Checkpoint {
            tx_id: row.try_get("last_tx")?,
            position: row.try_get("last_position")?,
        },
    })
}
impl Shadow {
    /// Rows on one side only, as JSON, both ways.
    async fn compare(
        &self,
        tx: &Transaction<'_>,
        table: &str,
    ) -> Result<TableDrift, ProjectionError> {
        let live = format!("{}.{table}", self.live_schema);
        let shadow = format!("{}.{table}", self.schema);
        let side = |a: &str, b: &str| {
            format!(
                "SELECT to_jsonb(d) AS row FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) d \
                 LIMIT {DRIFT_ROWS}"
            )
        };
        let rows = |rows: Vec<tokio_postgres::Row>| {
            rows.iter()
                .map(|r| r.try_get::<_, Value>("row"))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(TableDrift {
            table: table.to_string(),
            only_live: rows(tx.query(&side(&live, &shadow), &[]).await?)?,
            only_rebuilt: rows(tx.query(&side(&shadow, &live), &[]).await?)?,
        })
    }
}
