//! The checkpoint row of a projection: read and moved inside the batch's transaction, and
//! compared with an event's position to tell whether the projection has applied it (what
//! read-your-writes waits for). Separate so that the runner's transaction reads as its steps.

use deadpool_postgres::Transaction;

use crate::error::ProjectionError;
use crate::event::Checkpoint;

pub(super) async fn load_checkpoint(
    tx: &Transaction<'_>,
    name: &str,
) -> Result<Checkpoint, ProjectionError> {
    let statement = tx
        .prepare_cached(
            "SELECT last_tx::text::bigint AS last_tx, last_position FROM projection_checkpoints \
             WHERE name = $1",
        )
        .await?;
    let row = tx.query_opt(&statement, &[&name]).await?;
    Ok(match row {
        None => Checkpoint::START,
        Some(row) => Checkpoint {
            tx_id: row.try_get("last_tx")?,
            position: row.try_get("last_position")?,
        },
    })
}

pub(super) async fn save_checkpoint(
    tx: &Transaction<'_>,
    name: &str,
    at: Checkpoint,
    applied: usize,
) -> Result<(), ProjectionError> {
    crate::rows::execute(
        tx,
        "INSERT INTO projection_checkpoints (name, last_tx, last_position, events_applied) \
         VALUES ($1, $2::text::xid8, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, \
             last_position = EXCLUDED.last_position, \
             events_applied = projection_checkpoints.events_applied + EXCLUDED.events_applied, \
             updated_at = now()",
        &[
            &name,
            &at.tx_id.to_string(),
            &at.position,
            &(applied as i64),
        ],
    )
    .await?;
    Ok(())
}

/// Whether `projection` has applied the event at `position` (an event it set aside, failed or
/// parked, is not applied). `None` when no event has that position (never written, or the
/// position of a rolled-back insert).
pub async fn has_applied(
    client: &impl tokio_postgres::GenericClient,
    projection: &str,
    position: i64,
) -> Result<Option<bool>, ProjectionError> {
    let row = client
        .query_opt(
            "SELECT coalesce((SELECT (e.tx_id, e.position) <= (c.last_tx, c.last_position) \
                                FROM projection_checkpoints c WHERE c.name = $2), false) \
                    AND NOT EXISTS (SELECT 1 FROM projection_dead_letters d \
                                     WHERE d.projection = $2 AND d.position = $1 \
                                       AND d.state <> 'skipped') AS applied \
               FROM events e WHERE e.position = $1",
            &[&position, &projection],
        )
        .await?;
    Ok(row.map(|row| row.try_get("applied")).transpose()?)
}
