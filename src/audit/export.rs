//! The log as JSON Lines, one [`AuditEvent`](super::AuditEvent) per line, in the gap-free
//! catch-up order `(tx_id, position)` and only from finished transactions, so two exports
//! never disagree about the order and an export never misses an event that commits later
//! with a lower position.

use std::io::Write;

use chrono::{DateTime, Utc};
use subdesk_projections::event::EVENT_COLUMNS;
use subdesk_projections::{Checkpoint, StoredEvent};
use tokio_postgres::GenericClient;

use super::AuditEvent;

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub aggregate_type: Option<String>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

/// Reads up to `limit` events after `after` that pass `filter`, in catch-up order.
pub async fn page(
    client: &impl GenericClient,
    after: Checkpoint,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<AuditEvent>, subdesk_projections::ProjectionError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, hash FROM events \
          WHERE (tx_id, position) > ($1::text::xid8, $2) \
            AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
            AND ($3::text IS NULL OR aggregate_type = $3) \
            AND ($4::timestamptz IS NULL OR recorded_at >= $4) \
            AND ($5::timestamptz IS NULL OR recorded_at < $5) \
          ORDER BY events.tx_id, events.position LIMIT $6"
    );
    let rows = client
        .query(
            &sql,
            &[
                &after.tx_id.to_string(),
                &after.position,
                &filter.aggregate_type,
                &filter.from,
                &filter.to,
                &limit,
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(AuditEvent::new(
                StoredEvent::try_from(row)?,
                row.try_get::<_, &[u8]>("hash")?,
            ))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Read(#[from] subdesk_projections::ProjectionError),
    #[error("writing: {0}")]
    Write(#[from] std::io::Error),
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("waiting for open transactions: {0}")]
    Horizon(String),
}

/// Writes every event that passes `filter` to `out`, one JSON object per line. `progress`
/// gets the running count. Returns the number of events written.
pub async fn export(
    client: &impl GenericClient,
    filter: &Filter,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64, ExportError> {
    // Everything committed before the export started is in it, even if another transaction
    // holds the read horizon back for a moment.
    if !subdesk_projections::event::wait_for_horizon(client, std::time::Duration::from_secs(30))
        .await
        .map_err(|e| ExportError::Horizon(e.to_string()))?
    {
        tracing::warn!(
            "transactions older than the export are still open; their events are not in it"
        );
    }
    let mut after = Checkpoint::START;
    let mut written = 0u64;
    loop {
        let events = page(client, after, filter, 10_000).await?;
        let Some(last) = events.last() else {
            break;
        };
        after = Checkpoint {
            tx_id: last.tx_id,
            position: last.position,
        };
        for event in &events {
            serde_json::to_writer(&mut *out, event)?;
            out.write_all(b"\n")?;
        }
        written += events.len() as u64;
        progress(written);
    }
    out.flush()?;
    Ok(written)
}
