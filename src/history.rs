//! A stream's history as callers see it: every event with its sequence, global position,
//! recorded time, type, version, payload (in the current shape) and metadata.
//!
//! The resource routers decide who may see a stream and which events a viewer may not see
//! (internal comments for the customer side); this module only reads and shapes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use subdesk_projections::event::EVENT_COLUMNS;
use subdesk_projections::StoredEvent;
use tokio_postgres::GenericClient;

/// One event of a history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "sequence": 1, "position": 42, "recorded_at": "2026-11-24T09:00:00.123456Z",
    "event_type": "CaseOpened", "event_version": "1.0",
    "payload": {"type": "CaseOpened", "key": "CASE-1001"},
    "metadata": {"actor_id": "ann@acme.example", "actor_role": "customer",
                 "request_id": "0193...", "correlation_id": "0193...", "causation_id": "0193..."}
}))]
pub struct HistoryEntry {
    pub sequence: i64,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    /// Actor and role, request, correlation and causation ids, idempotency key.
    pub metadata: Value,
}

/// Metadata the customer side (customers, partners) may read of an event: who and which
/// request. Idempotency keys, scopes (token ids) and request hashes are for staff.
const CUSTOMER_METADATA: [&str; 5] = [
    "actor_id",
    "actor_role",
    "request_id",
    "correlation_id",
    "causation_id",
];

impl HistoryEntry {
    /// The entry as `viewer` may read it: the customer side gets the metadata cut to actor and
    /// request ids; staff and auditors get everything.
    pub fn for_viewer(event: StoredEvent, viewer: &crate::auth::Principal) -> Self {
        let mut entry = Self::from(event);
        if !viewer.sees_everything() {
            if let Value::Object(metadata) = &mut entry.metadata {
                metadata.retain(|key, _| CUSTOMER_METADATA.contains(&key.as_str()));
            }
        }
        entry
    }
}

impl From<StoredEvent> for HistoryEntry {
    fn from(event: StoredEvent) -> Self {
        let event = event.upcasted();
        Self {
            sequence: event.sequence,
            position: event.position,
            recorded_at: event.recorded_at,
            event_type: event.event_type,
            event_version: event.event_version,
            payload: event.payload,
            metadata: event.metadata,
        }
    }
}

/// Every event of one stream, in sequence order.
pub async fn stream(
    client: &impl GenericClient,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>, subdesk_projections::ProjectionError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events \
          WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
    );
    client
        .query(&sql, &[&aggregate_type, &aggregate_id])
        .await?
        .iter()
        .map(StoredEvent::try_from)
        .collect()
}
