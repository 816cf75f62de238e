//! The event log as catch-up readers see it.

use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use cqrs_es::Aggregate;
use serde_json::Value;
use subdesk_aggregates::upcast::{upcast, upcasters_for};
use tokio_postgres::{GenericClient, Row};

use crate::error::ProjectionError;

/// A point in the catch-up order: the last event a reader has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Checkpoint {
    /// The inserting transaction's id (`xid8`, as a number).
    pub tx_id: i64,
    pub position: i64,
}

impl Checkpoint {
    pub const START: Self = Self {
        tx_id: 0,
        position: 0,
    };

    /// The `after` token of the audit API: `<tx_id>.<position>`.
    pub fn token(&self) -> String {
        format!("{}.{}", self.tx_id, self.position)
    }

    pub fn parse_token(token: &str) -> Option<Self> {
        let (tx, position) = token.split_once('.')?;
        Some(Self {
            tx_id: tx.parse().ok().filter(|v: &i64| *v >= 0)?,
            position: position.parse().ok().filter(|v: &i64| *v >= 0)?,
        })
    }
}

/// One stored event with every column of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub tx_id: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    /// Whether it was stored sealed (its personal fields encrypted; see [`crate::privacy`]).
    /// `event_version` and the payload are the opened ones.
    pub sealed: bool,
}

/// The column list every reader selects, with the names [`StoredEvent`]'s `TryFrom<&Row>`
/// reads.
///
/// Its `tx_id` is an alias of an expression: a reader must order by `events.tx_id`, the
/// column, or `ORDER BY tx_id` means the alias, which no index has, and every batch sorts
/// the whole log (it did: a rebuild of a million events read each batch by a parallel full
/// scan and sort).
///
/// It also selects the wrapped keys of a sealed event's subjects (`keys`, see
/// [`crate::privacy`]), so that the event opens as it is read.
pub const EVENT_COLUMNS: &str = concat!(
    "position, tx_id::text::bigint AS tx_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at, ",
    crate::sealed_keys_column!()
);

impl TryFrom<&Row> for StoredEvent {
    type Error = ProjectionError;

    /// Reads a row selected with [`EVENT_COLUMNS`] and opens its sealed fields (an erased
    /// subject's read as [`crate::privacy::ERASED`]); a NULL, a column of another type or
    /// sealed data that does not open is an error.
    fn try_from(row: &Row) -> Result<Self, Self::Error> {
        let mut event = Self {
            position: row.try_get("position")?,
            tx_id: row.try_get("tx_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
            sealed: false,
        };
        event.sealed = event.event_version.ends_with(crate::privacy::SEALED_SUFFIX);
        let keys: Option<Value> = row.try_get("keys")?;
        crate::privacy::seal::open(
            &mut event.event_version,
            &mut event.payload,
            &mut event.metadata,
            keys.as_ref(),
        )
        .map_err(|source| ProjectionError::Sealed {
            position: event.position,
            source,
        })?;
        Ok(event)
    }
}

impl StoredEvent {
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            tx_id: self.tx_id,
            position: self.position,
        }
    }

    /// The event with its payload and version brought to the current shape (stored events are
    /// never rewritten; older versions are upcast on the way out).
    pub fn upcasted(mut self) -> Self {
        let upcasters = upcasters_for(&self.aggregate_type);
        if upcasters.is_empty() {
            return self;
        }
        let serialized = upcast(
            SerializedEvent::new(
                self.aggregate_id.clone(),
                usize::try_from(self.sequence).unwrap_or_default(),
                self.aggregate_type.clone(),
                self.event_type.clone(),
                std::mem::take(&mut self.event_version),
                std::mem::take(&mut self.payload),
                Value::Null,
            ),
            &upcasters,
        );
        self.event_version = serialized.event_version;
        self.payload = serialized.payload;
        self
    }

    /// The payload in the current shape of aggregate `A`'s events (older versions upcast).
    pub fn decode<A: Aggregate>(&self) -> Result<A::Event, ProjectionError> {
        let upcasters = upcasters_for(&self.aggregate_type);
        let current = !upcasters
            .iter()
            .any(|u| u.can_upcast(&self.event_type, &self.event_version));
        if current {
            // Already in the current shape: read it in place rather than from a deep copy
            // (every projection decodes every event of its aggregate type; in a rebuild the
            // copies were a good part of the decoding).
            return <A::Event as serde::Deserialize>::deserialize(&self.payload).map_err(
                |source| ProjectionError::Decode {
                    position: self.position,
                    event_type: self.event_type.clone(),
                    event_version: self.event_version.clone(),
                    source,
                },
            );
        }
        let serialized = upcast(
            SerializedEvent::new(
                self.aggregate_id.clone(),
                usize::try_from(self.sequence).unwrap_or_default(),
                self.aggregate_type.clone(),
                self.event_type.clone(),
                self.event_version.clone(),
                self.payload.clone(),
                Value::Null,
            ),
            &upcasters,
        );
        serde_json::from_value(serialized.payload).map_err(|source| ProjectionError::Decode {
            position: self.position,
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            source,
        })
    }

    /// A metadata entry (`actor_id`, `request_id`, ...), if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// Like [`read_batch`], but never past `until` (inclusive).
pub async fn read_batch_until(
    client: &impl GenericClient,
    after: Checkpoint,
    until: Checkpoint,
    limit: i64,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events \
          WHERE (tx_id, position) > ($1::text::xid8, $2) \
            AND (tx_id, position) <= ($3::text::xid8, $4) \
            AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
          ORDER BY events.tx_id, events.position LIMIT $5"
    );
    let rows = client
        .query(
            &sql,
            &[
                &after.tx_id.to_string(),
                &after.position,
                &until.tx_id.to_string(),
                &until.position,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(StoredEvent::try_from).collect()
}

/// Reads up to `limit` events after `after` in catch-up order, only from transactions that
/// have finished: `tx_id` below the oldest transaction still running. A transaction that is
/// still open can commit later with lower positions; waiting for it is what makes the read
/// gap-free.
pub async fn read_batch(
    client: &impl GenericClient,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let rows = client
        .query(
            &read_batch_sql(),
            &[&after.tx_id.to_string(), &after.position, &limit],
        )
        .await?;
    rows.iter().map(StoredEvent::try_from).collect()
}

/// [`read_batch`] on a statement prepared once per connection, for readers that run it
/// over and over (the projection runner, rebuilds).
pub async fn read_batch_prepared(
    tx: &deadpool_postgres::Transaction<'_>,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let statement = tx.prepare_cached(&read_batch_sql()).await?;
    let rows = tx
        .query(
            &statement,
            &[&after.tx_id.to_string(), &after.position, &limit],
        )
        .await?;
    rows.iter().map(StoredEvent::try_from).collect()
}

pub(crate) fn read_batch_sql() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM events \
          WHERE (tx_id, position) > ($1::text::xid8, $2) \
            AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
          ORDER BY events.tx_id, events.position LIMIT $3"
    )
}

/// The transaction-id horizon that covers every transaction begun so far: once the readable
/// horizon (`pg_snapshot_xmin`) reaches it, every event committed before this call can be
/// read in catch-up order.
pub async fn current_xmax(client: &impl GenericClient) -> Result<i64, ProjectionError> {
    Ok(client
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax",
            &[],
        )
        .await?
        .try_get("xmax")?)
}

/// Whether every transaction below `xmax` has finished.
pub async fn horizon_passed(
    client: &impl GenericClient,
    xmax: i64,
) -> Result<bool, ProjectionError> {
    Ok(client
        .query_one(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint >= $1 AS passed",
            &[&xmax],
        )
        .await?
        .try_get("passed")?)
}

/// Waits (at most `limit`) until every transaction begun before this call has finished, so
/// that a one-shot reader (export, rebuild) sees everything committed before it started.
/// Returns false if other transactions were still open when the limit ran out.
pub async fn wait_for_horizon(
    client: &impl GenericClient,
    limit: std::time::Duration,
) -> Result<bool, ProjectionError> {
    let xmax = current_xmax(client).await?;
    let deadline = std::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if horizon_passed(client, xmax).await? {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
}
