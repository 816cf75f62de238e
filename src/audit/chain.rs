//! What the chain hashes and how a broken link is named: shared by `verify` (the chains) and
//! `anchors` (the old hashes of events sealed in place).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Which streams to verify (all when both are `None`).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
}

/// The first place where the log is not what its chain says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokenLink {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    /// `hash_mismatch` (content or order changed), `missing_event` (a gap in the stream) or
    /// `anchor_mismatch` (an event sealed in place does not give back the hash it had before;
    /// see `anchors`).
    pub problem: String,
    /// What the chain says the hash (or the sequence) should be.
    pub expected: String,
    /// What is stored.
    pub found: String,
}

/// The canonical bytes of an event (see `events_canonical` in migration V1).
#[allow(clippy::too_many_arguments)]
pub fn canonical(
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    event_version: &str,
    recorded_at: DateTime<Utc>,
    payload: &str,
    metadata: &str,
) -> Vec<u8> {
    [
        aggregate_type,
        aggregate_id,
        &sequence.to_string(),
        event_type,
        event_version,
        &recorded_at.timestamp_micros().to_string(),
        payload,
        metadata,
    ]
    .join("\n")
    .into_bytes()
}
