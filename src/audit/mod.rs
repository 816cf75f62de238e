//! What auditors need beyond the history endpoints: verification of the hash chains, and the
//! log as JSON Lines.

pub mod anchors;
pub mod chain;
pub mod export;
pub mod verify;

use serde::Serialize;
use serde_json::Value;
use subdesk_projections::StoredEvent;

/// One event as the audit API and the export write it: every column, the payload in its
/// current shape (`event_version` after upcasting, `stored_version` as written), and the
/// chain hash in hex.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub position: i64,
    pub tx_id: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub stored_version: String,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub payload: Value,
    pub metadata: Value,
    /// sha256(previous hash of the stream || canonical content), hex.
    pub hash: String,
}

impl AuditEvent {
    pub fn new(event: StoredEvent, hash: &[u8]) -> Self {
        let stored_version = if event.sealed {
            format!(
                "{}{}",
                event.event_version,
                subdesk_projections::privacy::SEALED_SUFFIX
            )
        } else {
            event.event_version.clone()
        };
        let event = event.upcasted();
        Self {
            position: event.position,
            tx_id: event.tx_id,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            stored_version,
            recorded_at: event.recorded_at,
            payload: event.payload,
            metadata: event.metadata,
            hash: hex::encode(hash),
        }
    }
}
