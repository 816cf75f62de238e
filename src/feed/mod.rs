//! The event feed for integrators (`GET /v1/events`) and what webhooks deliver: the log in its
//! gap-free catch-up order, cut to what one principal may see, each event in the shape
//! integrators read ([`FeedEvent`]).
//!
//! Staff read the log itself. Everyone else reads through the `feed` projection's index
//! (`feed_index`, one row per event and org or partner), so a customer's or a partner's page
//! costs index probes into its own orgs, never a scan of the log. Every page scans at most a
//! bounded number of index rows: when filters leave fewer events than asked for, the page is
//! short, and `next` still moves past everything scanned.

pub mod names;
mod scan;
pub mod slots;

use serde::Serialize;
use serde_json::Value;
use subdesk_projections::{Checkpoint, StoredEvent};
use tokio_postgres::GenericClient;

pub use names::{event_name, FilterError, TypeFilter};

use crate::access::feed::{audiences, sees_event};
use crate::auth::Principal;
use crate::history::HistoryEntry;

/// One event as integrators read it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "evt_42", "type": "case.opened", "created": 1795942800,
    "recorded_at": "2026-11-24T09:00:00.123456Z", "aggregate_type": "SupportCase",
    "aggregate_id": "0193...", "sequence": 1, "position": 42, "cursor": "1207.42",
    "data": {"type": "CaseOpened", "key": "CASE-1001"},
    "metadata": {"actor_id": "ann@acme.example", "actor_role": "customer"}
}))]
pub struct FeedEvent {
    /// The event's stable id (`evt_<position>`).
    pub id: String,
    /// The stored type in dotted lower case under its aggregate (`case.comment_added`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was recorded, in Unix seconds.
    pub created: i64,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Its place in its stream (1, 2, ...): events of one aggregate come in this order.
    pub sequence: i64,
    /// Its global position in the log.
    pub position: i64,
    /// Pass as `after` (or `Last-Event-ID`) to read on from this event.
    pub cursor: String,
    /// The payload in its current shape, as the reader may see it.
    pub data: Value,
    /// Actor and request ids (staff also read idempotency keys and scopes).
    pub metadata: Value,
    /// `cursor`, parsed.
    #[serde(skip)]
    pub checkpoint: Checkpoint,
}

/// Fields of a payload only support staff read: the times a service-level warning is due.
fn redact_staff_fields(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|key, _| !key.ends_with("warning_at"));
            fields.values_mut().for_each(redact_staff_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(redact_staff_fields),
        _ => {}
    }
}

impl FeedEvent {
    pub fn for_viewer(stored: StoredEvent, viewer: &Principal) -> Self {
        let checkpoint = stored.checkpoint();
        let aggregate_type = stored.aggregate_type.clone();
        let aggregate_id = stored.aggregate_id.clone();
        let name = event_name(&stored.aggregate_type, &stored.event_type);
        let entry = HistoryEntry::for_viewer(stored, viewer);
        let mut data = entry.payload;
        if !viewer.sees_everything() {
            redact_staff_fields(&mut data);
        }
        Self {
            id: format!("evt_{}", entry.position),
            event_type: name,
            created: entry.recorded_at.timestamp(),
            recorded_at: entry.recorded_at,
            aggregate_type,
            aggregate_id,
            sequence: entry.sequence,
            position: entry.position,
            cursor: checkpoint.token(),
            data,
            metadata: entry.metadata,
            checkpoint,
        }
    }
}

/// One page of the feed.
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<FeedEvent>,
    /// Where the next page starts: after the last event, or after everything scanned.
    pub next: Checkpoint,
    /// Whether more may follow at once (the page or its scan was full).
    pub has_more: bool,
}

/// How many index rows (or log rows, for staff) a page may scan for `limit` events.
fn scan_bound(limit: i64) -> i64 {
    (limit * 4).clamp(100, 1000)
}

/// Up to `limit` events after `after` that `principal` sees and `filter` accepts.
pub async fn page(
    client: &impl GenericClient,
    principal: &Principal,
    after: Checkpoint,
    filter: &TypeFilter,
    limit: i64,
) -> Result<Page, subdesk_projections::ProjectionError> {
    let bound = scan_bound(limit);
    let scanned = match audiences(principal) {
        None => scan::log(client, after, bound).await?,
        Some(keys) if keys.is_empty() => Vec::new(),
        Some(keys) => scan::index(client, &keys, after, bound).await?,
    };
    let full_scan = scanned.len() as i64 >= bound;
    let mut next = after;
    let mut wanted = Vec::new();
    let mut last_seen = None;
    for row in &scanned {
        if last_seen == Some(row.position) {
            continue; // the same event under two of the principal's audiences
        }
        last_seen = Some(row.position);
        if wanted.len() as i64 == limit {
            break;
        }
        next = row.checkpoint;
        if filter.accepts(&event_name(&row.aggregate_type, &row.event_type))
            && sees_event(principal, row.as_feed_row())
        {
            wanted.push(row.position);
        }
    }
    let filled = wanted.len() as i64 == limit;
    let mut stored = scan::events(client, &wanted).await?;
    stored.sort_by_key(|e| (e.tx_id, e.position));
    Ok(Page {
        events: stored
            .into_iter()
            .map(|e| FeedEvent::for_viewer(e, principal))
            .collect(),
        next,
        has_more: filled || full_scan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_times_are_cut_from_what_the_customer_side_reads() {
        let mut payload = serde_json::json!({
            "first_response_due": "x", "first_response_warning_at": "y",
            "resolution": {"due": "z", "warning_at": "w"}
        });
        redact_staff_fields(&mut payload);
        assert_eq!(
            payload,
            serde_json::json!({"first_response_due": "x", "resolution": {"due": "z"}})
        );
    }

    #[test]
    fn a_page_scans_a_bounded_number_of_rows() {
        assert_eq!(scan_bound(1), 100);
        assert_eq!(scan_bound(100), 400);
        assert_eq!(scan_bound(1000), 1000);
    }
}
