//! Events a projection set aside, and what an operator does about them (migrations V10, V13).
//!
//! An event a projection cannot apply on its own with a deterministic error is `failed`; the
//! later events of its stream are `parked` behind it, in order, so that nothing of that stream
//! is applied out of order meanwhile. After a fix, [`retry`] applies a stream's failed and
//! parked events in their catch-up order, as a rebuild would, and removes their rows; [`skip`]
//! gives one up with a recorded reason, and rebuilds and drift checks skip it the same way.
//! Either way the read model ends up equal to a rebuild.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::error::ProjectionError;
use crate::event::{StoredEvent, EVENT_COLUMNS};
use crate::projection::{Projection, CLAIM_NAMESPACE};

/// One set-aside event of one projection.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub projection: String,
    pub position: i64,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: String,
    /// `failed`, `parked` (behind a failed event of its stream) or `skipped`.
    pub state: String,
    pub error: String,
    /// Why an operator skipped it.
    pub reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl DeadLetter {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            projection: row.try_get("projection")?,
            position: row.try_get("position")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            event_type: row.try_get("event_type")?,
            state: row.try_get("state")?,
            error: row.try_get("error")?,
            reason: row.try_get("reason")?,
            recorded_at: row.try_get("recorded_at")?,
        })
    }
}

/// A stream, as `(aggregate_type, aggregate_id)`.
pub type Stream = (String, String);

/// The streams of `projection` with a failed or parked event: their later events are parked.
pub async fn parked_streams(
    tx: &Transaction<'_>,
    projection: &str,
) -> Result<HashSet<Stream>, ProjectionError> {
    let statement = tx
        .prepare_cached(
            "SELECT DISTINCT aggregate_type, aggregate_id FROM projection_dead_letters \
              WHERE projection = $1 AND state <> 'skipped' AND aggregate_id IS NOT NULL",
        )
        .await?;
    Ok(tx
        .query(&statement, &[&projection])
        .await?
        .iter()
        .map(|row| Ok((row.try_get("aggregate_type")?, row.try_get("aggregate_id")?)))
        .collect::<Result<_, tokio_postgres::Error>>()?)
}

/// Records `event` as set aside by `projection`: `failed` with `error`, or `parked` behind an
/// earlier event of its stream.
pub async fn record(
    client: &impl GenericClient,
    projection: &str,
    event: &StoredEvent,
    state: &str,
    error: &str,
) -> Result<(), ProjectionError> {
    client
        .execute(
            "INSERT INTO projection_dead_letters \
                 (projection, position, tx_id, event_type, error, state, aggregate_type, aggregate_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &projection,
                &event.position,
                &event.tx_id,
                &event.event_type,
                &error,
                &state,
                &event.aggregate_type,
                &event.aggregate_id,
            ],
        )
        .await?;
    metrics::counter!("subdesk_projection_dead_letters_total", "projection" => projection.to_string(), "state" => state.to_string())
        .increment(1);
    Ok(())
}

/// The set-aside events of one projection (or of all), in catch-up order.
pub async fn list(
    client: &impl GenericClient,
    projection: Option<&str>,
) -> Result<Vec<DeadLetter>, ProjectionError> {
    Ok(client
        .query(
            "SELECT projection, position, aggregate_type, aggregate_id, event_type, state, error, \
                    reason, recorded_at \
               FROM projection_dead_letters \
              WHERE $1::text IS NULL OR projection = $1 \
              ORDER BY projection, tx_id, position",
            &[&projection],
        )
        .await?
        .iter()
        .map(DeadLetter::from_row)
        .collect::<Result<_, _>>()?)
}

/// Whether `projection` set aside the event at `position` (failed or parked, not skipped:
/// a skipped event counts as done).
pub async fn is_set_aside(
    client: &impl GenericClient,
    projection: &str,
    position: i64,
) -> Result<bool, ProjectionError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM projection_dead_letters \
              WHERE projection = $1 AND position = $2 AND state <> 'skipped'",
            &[&projection, &position],
        )
        .await?
        .is_some())
}

/// The positions `projection` skipped for good: rebuilds and drift checks leave them out.
pub async fn skipped_positions(
    client: &impl GenericClient,
    projection: &str,
) -> Result<HashSet<i64>, ProjectionError> {
    Ok(client
        .query(
            "SELECT position FROM projection_dead_letters \
              WHERE projection = $1 AND state = 'skipped'",
            &[&projection],
        )
        .await?
        .iter()
        .map(|row| row.try_get("position"))
        .collect::<Result<_, _>>()?)
}

/// Every position `projection` set aside, in any state: a drift check leaves them out of its
/// rebuild, as the live read model has them out.
pub async fn set_aside_positions(
    client: &impl GenericClient,
    projection: &str,
) -> Result<HashSet<i64>, ProjectionError> {
    Ok(client
        .query(
            "SELECT position FROM projection_dead_letters WHERE projection = $1",
            &[&projection],
        )
        .await?
        .iter()
        .map(|row| row.try_get("position"))
        .collect::<Result<_, _>>()?)
}

/// What a retry did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryReport {
    /// Events applied (their rows removed).
    pub applied: usize,
    /// Streams that still fail, with the error.
    pub still_failing: Vec<(String, String)>,
}

/// Re-applies the failed and parked events of `projection` (all of them, or those of the
/// stream of the event at `position`), stream by stream in catch-up order, under the
/// projection's claim. A stream that applies has its rows removed; one that still fails keeps
/// them, with the new error.
pub async fn retry(
    pool: &Pool,
    projection: &dyn Projection,
    position: Option<i64>,
) -> Result<RetryReport, ProjectionError> {
    let name = projection.name();
    let mut client = pool.get().await?;
    let mut tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&CLAIM_NAMESPACE, &name],
    )
    .await?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events \
          WHERE events.position IN ( \
                SELECT d.position FROM projection_dead_letters d \
                 WHERE d.projection = $1 AND d.state <> 'skipped' \
                   AND ($2::bigint IS NULL OR (d.aggregate_type, d.aggregate_id) = \
                        (SELECT s.aggregate_type, s.aggregate_id FROM projection_dead_letters s \
                          WHERE s.projection = $1 AND s.position = $2))) \
          ORDER BY events.tx_id, events.position"
    );
    let events: Vec<StoredEvent> = tx
        .query(&sql, &[&name, &position])
        .await?
        .iter()
        .map(StoredEvent::try_from)
        .collect::<Result<_, _>>()?;
    let mut streams: BTreeMap<Stream, Vec<StoredEvent>> = BTreeMap::new();
    for event in events {
        streams
            .entry((event.aggregate_type.clone(), event.aggregate_id.clone()))
            .or_default()
            .push(event);
    }
    let mut report = RetryReport::default();
    for ((aggregate_type, aggregate_id), events) in streams {
        let savepoint = tx.savepoint("stream").await?;
        match projection.apply(&savepoint, &events).await {
            Ok(()) => {
                savepoint.commit().await?;
                let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
                tx.execute(
                    "DELETE FROM projection_dead_letters \
                      WHERE projection = $1 AND position = ANY($2)",
                    &[&name, &positions],
                )
                .await?;
                report.applied += events.len();
            }
            Err(error) if error.is_deterministic() => {
                savepoint.rollback().await?;
                let text = error.to_string();
                tx.execute(
                    "UPDATE projection_dead_letters SET error = $3 \
                      WHERE projection = $1 AND state = 'failed' \
                        AND (aggregate_type, aggregate_id) = ($2, $4)",
                    &[&name, &aggregate_type, &text, &aggregate_id],
                )
                .await?;
                report
                    .still_failing
                    .push((format!("{aggregate_type}/{aggregate_id}"), text));
            }
            Err(error) => return Err(error),
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// Gives up the event at `position` for `projection`, with `reason`: it counts as done from
/// now on, and rebuilds skip it. Returns false when `projection` set no such event aside.
/// Events parked behind it stay parked until [`retry`] applies them.
pub async fn skip(
    client: &impl GenericClient,
    projection: &str,
    position: i64,
    reason: &str,
) -> Result<bool, ProjectionError> {
    let changed = client
        .execute(
            "UPDATE projection_dead_letters \
                SET state = 'skipped', reason = $3, resolved_at = now() \
              WHERE projection = $1 AND position = $2 AND state <> 'skipped'",
            &[&projection, &position, &reason],
        )
        .await?;
    Ok(changed == 1)
}

/// Forgets the failed and parked events of `projection` (a rebuild that applied them all
/// replaces them); skipped ones stay, since the rebuild skipped them.
pub async fn clear_after_rebuild(
    tx: &Transaction<'_>,
    projection: &str,
) -> Result<(), ProjectionError> {
    tx.execute(
        "DELETE FROM projection_dead_letters WHERE projection = $1 AND state <> 'skipped'",
        &[&projection],
    )
    .await?;
    Ok(())
}
