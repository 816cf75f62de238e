//! Erasing a data subject: their data keys destroyed, an `ErasureRecorded` event in the log,
//! and everything derived from their data scrubbed.
//!
//! [`record`] runs in the caller's transaction and is the erasure proper: once it commits,
//! the subject's sealed data reads as `[erased]` everywhere the log is read, the rows that
//! name the subject's address outside the log are gone or scrubbed (outbox mail to them,
//! tokens, language and alert settings, idempotent answers), and every process is told to
//! forget its caches (`ERASURES_CHANNEL`). [`complete`] does the rest, which is derived from
//! the subject's events rather than their address and may take a while: attachment bytes they
//! uploaded, rendered mail quoting them, and a rebuild of every read model (which then holds
//! `[erased]` where their data was, exactly as any later rebuild will).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::{json, Value};
use subdesk_projections::privacy::{self, ERASED};
use subdesk_projections::Projection;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use super::keyring::{self, Keyring, KeyringError};

/// Where erasures are announced (payload: the erasure id): every process drops its cached
/// keys and aggregate states.
pub const ERASURES_CHANNEL: &str = "subdesk_erasures";

/// The stream type of `ErasureRecorded` events (one stream per erasure).
pub const AGGREGATE_TYPE: &str = "Privacy";

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Keys(#[from] KeyringError),
    #[error(transparent)]
    Privacy(#[from] privacy::PrivacyError),
    #[error("rebuilding the read models: {0}")]
    Rebuild(#[from] subdesk_projections::ProjectionError),
    /// The request itself is wrong (a stable code and words).
    #[error("{1}")]
    Invalid(&'static str, String),
}

/// An erasure and how far it has come.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a1e-8c1b-7d2e-9f00-5b6c7d8e9f01", "status": "completed", "position": 9001,
    "subject_digest": "5f1c0a6e9b2d4c7e8a1f3b5d7c9e0a2b4d6f8e1c3a5b7d9f0e2c4a6b8d0f1e3a",
    "keys_destroyed": 1, "events": 12, "error": null,
    "requested_at": "2026-11-29T10:00:00Z", "completed_at": "2026-11-29T10:00:04Z"
}))]
pub struct Erasure {
    pub id: Uuid,
    /// `running` (the subject's data already reads as erased; derived data is being
    /// scrubbed and read models rebuilt), `completed` or `failed` (see `error`; request the
    /// erasure again to finish it).
    #[schema(pattern = "^(running|completed|failed)$")]
    pub status: String,
    /// Global position of the `ErasureRecorded` event.
    pub position: i64,
    /// The keyed digest that names the subject (never the address).
    pub subject_digest: String,
    /// Data keys of the subject this erasure destroyed (0 when an earlier erasure had).
    pub keys_destroyed: i64,
    /// Events that held the subject's sealed data (known once the background part ran).
    pub events: Option<i64>,
    pub error: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, status, position, subject, keys_destroyed, events, error, \
                       requested_at, completed_at";

impl Erasure {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            status: row.try_get("status")?,
            position: row.try_get("position")?,
            subject_digest: row.try_get("subject")?,
            keys_destroyed: i64::from(row.try_get::<_, i32>("keys_destroyed")?),
            events: row.try_get("events")?,
            error: row.try_get("error")?,
            requested_at: row.try_get("requested_at")?,
            completed_at: row.try_get("completed_at")?,
        })
    }
}

/// One erasure.
pub async fn find(client: &impl GenericClient, id: Uuid) -> Result<Option<Erasure>, EraseError> {
    let sql = format!("SELECT {COLUMNS} FROM erasures WHERE id = $1");
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .map(|row| Erasure::from_row(&row))
        .transpose()?)
}

/// The ids of erasures whose background part has not finished.
pub async fn running(client: &impl GenericClient) -> Result<Vec<Uuid>, EraseError> {
    Ok(client
        .query(
            "SELECT id FROM erasures WHERE status = 'running' ORDER BY requested_at",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?)
}

/// The longest subject address accepted (RFC 5321's path limit).
pub const MAX_SUBJECT: usize = 254;

/// Who asks for an erasure: the actor, and the metadata of their request (as a command's).
pub struct Requester {
    pub actor: subdesk_aggregates::Actor,
    pub metadata: HashMap<String, String>,
}

/// Records the erasure of `subject` in `tx` (see the module doc); the caller commits. `pool`
/// serves the look-up of the requesting actor's own data key.
pub async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    pool: &Pool,
    keys: &Keyring,
    subject: &str,
    reason: &str,
    by: &Requester,
) -> Result<Erasure, EraseError> {
    let address = privacy::normalize(subject);
    if address.is_empty() || address.chars().count() > MAX_SUBJECT || address == ERASED {
        return Err(EraseError::Invalid(
            "invalid_subject",
            format!("subject must be an address or user id of 1 to {MAX_SUBJECT} characters"),
        ));
    }
    if reason.trim().is_empty() {
        return Err(EraseError::Invalid(
            "invalid_reason",
            "reason must not be blank".into(),
        ));
    }
    let master = privacy::master()?;
    let digest = master.subject_digest(&address);
    let destroyed = key_ids(
        tx,
        "DELETE FROM subject_keys WHERE subject = $1 RETURNING key_id",
        &digest,
    )
    .await?;
    // Keys earlier erasures of the same subject destroyed: their events are scrubbed again.
    let earlier = key_ids(
        tx,
        "SELECT DISTINCT k AS key_id FROM erasures, unnest(key_ids) AS k WHERE subject = $1",
        &digest,
    )
    .await?;
    let id = Uuid::now_v7();
    let at = Utc::now();
    let position = append_recorded(tx, pool, keys, id, &digest, &destroyed, reason, by, at).await?;
    scrub_address(tx, &address).await?;
    let mut key_ids = destroyed.clone();
    key_ids.extend(earlier.into_iter().filter(|k| !destroyed.contains(k)));
    let sql = format!(
        "INSERT INTO erasures (id, subject, key_ids, keys_destroyed, position, requested_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let count = i32::try_from(destroyed.len()).unwrap_or(i32::MAX);
    let row = tx
        .query_one(&sql, &[&id, &digest, &key_ids, &count, &position, &at])
        .await?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&ERASURES_CHANNEL, &id.to_string()],
    )
    .await?;
    Ok(Erasure::from_row(&row)?)
}

/// Appends the `ErasureRecorded` event: the subject by keyed digest only, the destroyed key
/// ids, and the reason and requester sealed like any actor's data.
#[allow(clippy::too_many_arguments)]
async fn append_recorded(
    tx: &tokio_postgres::Transaction<'_>,
    pool: &Pool,
    keys: &Keyring,
    id: Uuid,
    digest: &str,
    destroyed: &[Uuid],
    reason: &str,
    by: &Requester,
    at: DateTime<Utc>,
) -> Result<i64, EraseError> {
    let payload = json!({
        "type": "ErasureRecorded",
        "erasure_id": id,
        "subject": digest,
        "keys": destroyed,
        "reason": reason,
        "by": by.actor,
        "at": at,
    });
    let metadata = serde_json::to_value(&by.metadata).unwrap_or(Value::Null);
    let mut events = [SerializedEvent::new(
        id.to_string(),
        1,
        AGGREGATE_TYPE.into(),
        "ErasureRecorded".into(),
        "1.0".into(),
        payload,
        metadata,
    )];
    let new_keys = keyring::seal_events(keys, pool, &mut events).await?;
    for key in &new_keys {
        tx.execute(
            "INSERT INTO subject_keys (key_id, subject, wrapped) VALUES ($1, $2, $3)",
            &[&key.key_id, &key.digest, &key.wrapped],
        )
        .await?;
    }
    let [event] = events;
    let position: i64 = tx
        .query_one(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) \
             VALUES ($1, $2, 1, $3, $4, $5, $6) RETURNING position",
            &[
                &event.aggregate_type,
                &event.aggregate_id,
                &event.event_type,
                &event.event_version,
                &event.payload,
                &event.metadata,
            ],
        )
        .await?
        .try_get("position")?;
    keys.remember(&new_keys);
    Ok(position)
}

/// Rows outside the log that name the subject's address: deleted, or the address replaced.
async fn scrub_address(
    tx: &tokio_postgres::Transaction<'_>,
    address: &str,
) -> Result<(), EraseError> {
    let statements = [
        // Mail to the subject, sent or not (a rebuild never derives mail to `[erased]`).
        "DELETE FROM notifications WHERE lower(recipient) = $1",
        "DELETE FROM mail_languages WHERE kind = 'user' AND lower(subject) = $1",
        "UPDATE mail_languages SET updated_by = '[erased]' WHERE lower(updated_by) = $1",
        "DELETE FROM partner_case_alerts WHERE lower(email) = $1",
        "UPDATE webhook_endpoints SET created_by = '[erased]' WHERE lower(created_by) = $1",
        "UPDATE partner_relationships SET granted_by = '[erased]' \
          WHERE lower(granted_by) = $1",
        // Idempotent answers to the subject's requests, and any answer that names them.
        "DELETE FROM idempotency_keys \
          WHERE scope IN (SELECT id::text FROM api_tokens WHERE lower(user_id) = $1) \
             OR strpos(lower(response_body::text), $1) > 0",
        // The subject's tokens stop working (the revocation notifies every process).
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()), \
                user_id = '[erased]', label = NULL \
          WHERE lower(user_id) = $1",
        "UPDATE api_tokens SET created_by = '[erased]' WHERE lower(created_by) = $1",
    ];
    for sql in statements {
        tx.execute(sql, &[&address]).await?;
    }
    Ok(())
}

/// The background part of every running erasure (see the module doc), until none is left:
/// the scrubs of each, then one rebuild of the read models for all of them. One process at a
/// time runs it (an advisory lock; another process that finds it taken leaves the work to the
/// holder, which looks for new erasures before it lets go). A failure is recorded in the
/// erasures it concerned, which can then be requested again. Returns how many completed.
pub async fn complete_running(
    pool: &Pool,
    projections: &[&dyn Projection],
) -> Result<usize, EraseError> {
    let lock = pool.get().await?;
    let locked: bool = lock
        .query_one(
            "SELECT pg_try_advisory_lock(x'e7a5'::int, 0) AS locked",
            &[],
        )
        .await?
        .try_get("locked")?;
    if !locked {
        return Ok(0);
    }
    let result = complete_locked(&lock, pool, projections).await;
    // Always let go of the session lock, or this connection would keep it in the pool.
    let unlocked = lock
        .execute("SELECT pg_advisory_unlock(x'e7a5'::int, 0)", &[])
        .await;
    let completed = result?;
    unlocked?;
    Ok(completed)
}

async fn complete_locked(
    lock: &deadpool_postgres::Object,
    pool: &Pool,
    projections: &[&dyn Projection],
) -> Result<usize, EraseError> {
    let mut completed = 0;
    loop {
        let ids = running(&***lock).await?;
        if ids.is_empty() {
            return Ok(completed);
        }
        match scrub_derived(pool, projections, &ids).await {
            Ok(()) => completed += ids.len(),
            Err(error) => {
                tracing::error!(%error, erasures = ids.len(), "erasures could not finish");
                lock.execute(
                    "UPDATE erasures SET status = 'failed', error = $2 WHERE id = ANY($1)",
                    &[&ids, &error.to_string()],
                )
                .await?;
                return Err(error);
            }
        }
    }
}

/// Scrubs what was derived from the events of erasures `ids`, and marks them completed.
async fn scrub_derived(
    pool: &Pool,
    projections: &[&dyn Projection],
    ids: &[Uuid],
) -> Result<(), EraseError> {
    let client = pool.get().await?;
    let mut positions_of = Vec::with_capacity(ids.len());
    for id in ids {
        let key_ids: Vec<Uuid> = client
            .query_one("SELECT key_ids FROM erasures WHERE id = $1", &[id])
            .await?
            .try_get("key_ids")?;
        let probes: Vec<Value> = key_ids.iter().map(|k| json!([{ "key": k }])).collect();
        let positions: Vec<i64> = client
            .query(
                "SELECT position FROM events \
                  WHERE event_version LIKE '%+sealed' \
                    AND EXISTS (SELECT 1 FROM unnest($1::jsonb[]) AS k(probe) \
                                 WHERE payload -> '$sealed' @> k.probe \
                                    OR metadata -> '$sealed' @> k.probe)",
                &[&probes],
            )
            .await?
            .iter()
            .map(|row| row.try_get("position"))
            .collect::<Result<_, _>>()?;
        // Bytes the subject uploaded (an attachment's sealed data is its uploader's).
        client
            .execute(
                "DELETE FROM case_attachment_blobs WHERE id IN \
                   (SELECT (payload ->> 'attachment_id')::uuid FROM events \
                     WHERE position = ANY($1) AND event_type = 'AttachmentAdded')",
                &[&positions],
            )
            .await?;
        positions_of.push(positions);
    }
    drop(client);
    rebuild(pool, projections).await?;
    let client = pool.get().await?;
    for (id, positions) in ids.iter().zip(&positions_of) {
        // Mail to others rendered with the subject's data loses its words (what was not
        // sent yet is not sent): mail caused by their events, and every mail about a case
        // they opened, since each one names the case by its summary.
        client
            .execute(
                "UPDATE notifications SET subject = '[erased]', body = '[erased]', \
                        facts = NULL, last_error = NULL, \
                        status = CASE WHEN status = 'sent' THEN status ELSE 'skipped' END \
                  WHERE source_position = ANY($1) \
                     OR (aggregate_type, aggregate_id) IN \
                        (SELECT aggregate_type, aggregate_id FROM events \
                          WHERE position = ANY($1) AND event_type = 'CaseOpened')",
                &[positions],
            )
            .await?;
        // Error texts about their events may quote them (a decoding error, a receiver's
        // answer): the texts go, the records stay.
        client
            .execute(
                "UPDATE projection_dead_letters SET error = '[erased]' WHERE position = ANY($1)",
                &[positions],
            )
            .await?;
        client
            .execute(
                "UPDATE webhook_deliveries SET error = '[erased]' \
                  WHERE position = ANY($1) AND error IS NOT NULL",
                &[positions],
            )
            .await?;
        client
            .execute(
                "UPDATE erasures SET status = 'completed', events = $2, error = NULL, \
                        completed_at = now() WHERE id = $1",
                &[id, &(positions.len() as i64)],
            )
            .await?;
    }
    Ok(())
}

/// Rebuilds every read model, waiting while an operator's rebuild or drift check holds one,
/// and trying again when the swap loses a race with readers (a deadlock with a reader of
/// several read-model tables, a lock wait that timed out): the swap's transaction rolls back
/// whole, so the old tables stay until a try succeeds.
async fn rebuild(pool: &Pool, projections: &[&dyn Projection]) -> Result<(), EraseError> {
    use subdesk_projections::ProjectionError;
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        let why =
            match subdesk_projections::rebuild::rebuild_all(pool, projections, &|_, _| {}).await {
                Err(ProjectionError::Busy(why)) => why,
                Err(ProjectionError::Database(error)) if lost_a_race(&error) => error.to_string(),
                result => return result.map(|_| ()).map_err(EraseError::from),
            };
        if pause >= std::time::Duration::from_secs(60) {
            return Err(EraseError::from(ProjectionError::Busy(why)));
        }
        tracing::info!(%why, "erasure's rebuild waits and tries again");
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// A deadlock, serialization failure, lock wait or statement timeout: the rebuild's swap lost
/// a race with readers and may be tried again.
fn lost_a_race(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
        [
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
        ]
        .contains(code)
    })
}

/// The `key_id` column of what `sql` returns for the subject's digest.
async fn key_ids(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    digest: &str,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    tx.query(sql, &[&digest])
        .await?
        .iter()
        .map(|row| row.try_get("key_id"))
        .collect()
}
