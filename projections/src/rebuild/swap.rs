//! The end of a rebuild: under the projection's claim, apply what was committed since the pass
//! over the log, then drop the live tables and move the shadow ones into their place. Separate
//! from the pass because it retries when a reader holds a live table, and owns the swap's SQL.

use std::collections::HashSet;

use deadpool_postgres::{Pool, Transaction};

use super::locks::claim;
use super::replay::replay;
use super::shadow::{Shadow, OUTBOX};
use crate::error::ProjectionError;
use crate::event::Checkpoint;
use crate::projection::Projection;

/// How long the swap may wait for a live table's lock before it gives way and tries again.
const SWAP_LOCK_TIMEOUT: &str = "2s";
/// Swap attempts before the rebuild gives up (the live tables stay; the shadow schema is left
/// for the next rebuild, which replaces it).
const SWAP_ATTEMPTS: u32 = 20;

/// Under the projection's claim, applies what was committed since the pass over the log and
/// swaps the shadow in. The swap drops the live tables, which needs their exclusive lock: it
/// waits at most [`SWAP_LOCK_TIMEOUT`] for a long reader, so that API reads queued behind the
/// swap are never held for longer, and then rolls back and tries again. Returns the events
/// applied to this projection.
pub(super) async fn finish_and_swap(
    pool: &Pool,
    projection: &dyn Projection,
    shadow: &Shadow,
    from: Checkpoint,
    applied: u64,
    skip: &HashSet<i64>,
) -> Result<u64, ProjectionError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        claim(&tx, projection.name()).await?;
        shadow.select(&tx).await?;
        let mut mine = applied;
        let mut reached = from;
        loop {
            let n = replay(&tx, projection, &mut reached, None, skip).await?;
            if n == 0 {
                break;
            }
            mine += n;
        }
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            .await?;
        match shadow.swap_in(&tx, reached).await {
            Ok(()) => {
                tx.commit().await?;
                return Ok(mine);
            }
            Err(ProjectionError::Database(error))
                if error.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
                    && attempt < SWAP_ATTEMPTS =>
            {
                drop(tx);
                tracing::info!(
                    projection = projection.name(),
                    attempt,
                    "a reader holds a live table; the swap tries again"
                );
                let pause = 100 * u64::from(attempt.min(10));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
impl Shadow {
    /// Replaces the live tables with the shadow ones and sets the checkpoint, in `tx` (which
    /// holds the projection's claim). The outbox keeps its live rows; it only gains the rows of
    /// events past the live checkpoint, which the live runner will not apply after the swap.
    async fn swap_in(&self, tx: &Transaction<'_>, at: Checkpoint) -> Result<(), ProjectionError> {
        tx.execute(
            &format!(
                "INSERT INTO {live}.{OUTBOX} (source_position, kind, recipient, subject, body, \
                                             aggregate_type, aggregate_id, created_at) \
                 SELECT s.source_position, s.kind, s.recipient, s.subject, s.body, \
                        s.aggregate_type, s.aggregate_id, s.created_at \
                   FROM {shadow}.{OUTBOX} s JOIN events e ON e.position = s.source_position \
                  WHERE NOT EXISTS (SELECT 1 FROM projection_checkpoints c WHERE c.name = $1) \
                     OR (e.tx_id, e.position) > (SELECT c.last_tx, c.last_position \
                                                   FROM projection_checkpoints c WHERE c.name = $1) \
                 ON CONFLICT (source_position, kind, recipient) DO NOTHING",
                live = self.live_schema,
                shadow = self.schema
            ),
            &[&self.name],
        )
        .await?;
        for table in self.tables {
            tx.batch_execute(&format!(
                "DROP TABLE {live}.{table}; ALTER TABLE {shadow}.{table} SET SCHEMA {live};",
                live = self.live_schema,
                shadow = self.schema
            ))
            .await?;
        }
        tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await?;
        // Everything the live read model had set aside applied in this rebuild (it would have
        // stopped otherwise), except what was skipped, which it skipped too.
        crate::dead_letters::clear_after_rebuild(tx, self.name).await?;
        tx.execute(
            "INSERT INTO projection_checkpoints (name, last_tx, last_position, events_applied) \
             VALUES ($1, $2::text::xid8, $3, 0) \
             ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, \
                 last_position = EXCLUDED.last_position, updated_at = now()",
            &[&self.name, &at.tx_id.to_string(), &at.position],
        )
        .await?;
        Ok(())
    }
}
