//! Replaying the log into a shadow: reading the next batch ahead on a connection of its own,
//! applying a batch to a shadow in a transaction of its own, and leaving out the events an
//! operator skipped. Separate so that the rebuild's pass, the swap and the drift check replay the
//! same way.

use std::borrow::Cow;
use std::collections::HashSet;

use deadpool_postgres::{Pool, Transaction};

use super::shadow::Shadow;
use crate::error::ProjectionError;
use crate::event::{
    read_batch_prepared, read_batch_sql, read_batch_until, Checkpoint, StoredEvent,
};
use crate::projection::Projection;

/// Events per transaction while replaying.
pub const REBUILD_BATCH: i64 = 10_000;
/// `events` without those at `skip`.
pub(super) fn without<'a>(
    events: &'a [StoredEvent],
    skip: &HashSet<i64>,
) -> Cow<'a, [StoredEvent]> {
    if skip.is_empty() || !events.iter().any(|e| skip.contains(&e.position)) {
        Cow::Borrowed(events)
    } else {
        Cow::Owned(
            events
                .iter()
                .filter(|e| !skip.contains(&e.position))
                .cloned()
                .collect(),
        )
    }
}
/// The next batch after `after`, on a statement prepared once for the reading connection.
pub(super) async fn read_ahead(
    client: &deadpool_postgres::Client,
    after: Checkpoint,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let statement = client.prepare_cached(&read_batch_sql()).await?;
    let rows = client
        .query(
            &statement,
            &[&after.tx_id.to_string(), &after.position, &REBUILD_BATCH],
        )
        .await?;
    rows.iter().map(StoredEvent::try_from).collect()
}

/// Applies one batch to one projection's shadow tables in a transaction of its own.
pub(super) async fn apply_to_shadow(
    pool: &Pool,
    projection: &dyn Projection,
    shadow: &Shadow,
    events: Cow<'_, [StoredEvent]>,
) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    shadow.select(&tx).await?;
    // A shadow is thrown away if the rebuild does not finish, so its batches need not wait
    // for their WAL flush; the swap does.
    tx.batch_execute("SET LOCAL synchronous_commit TO off")
        .await?;
    projection.apply(&tx, &events).await?;
    tx.commit().await?;
    Ok(())
}
/// Applies the next batch (bounded by `until`, without the events at `skip`) and moves `at`
/// past it.
pub(super) async fn replay(
    tx: &Transaction<'_>,
    projection: &dyn Projection,
    at: &mut Checkpoint,
    until: Option<Checkpoint>,
    skip: &HashSet<i64>,
) -> Result<u64, ProjectionError> {
    let events = match until {
        Some(until) => read_batch_until(&**tx, *at, until, REBUILD_BATCH).await?,
        None => read_batch_prepared(tx, *at, REBUILD_BATCH).await?,
    };
    let Some(last) = events.last() else {
        return Ok(0);
    };
    let last = last.checkpoint();
    projection.apply(tx, &without(&events, skip)).await?;
    *at = last;
    Ok(events.len() as u64)
}
pub(super) async fn count_events(pool: &Pool) -> Result<u64, ProjectionError> {
    let client = pool.get().await?;
    let n: i64 = client
        .query_one("SELECT count(*) AS total FROM events", &[])
        .await?
        .try_get("total")?;
    Ok(n.max(0) as u64)
}
