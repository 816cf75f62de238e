//! The feed's SQL: a bounded scan of the log (staff) or of the principal's part of the feed
//! index, and the events a page keeps.

use subdesk_projections::event::EVENT_COLUMNS;
use subdesk_projections::{Checkpoint, StoredEvent};
use tokio_postgres::{GenericClient, Row};

use crate::access::feed::FeedRow;

/// One scanned event with what decides who reads it.
#[derive(Debug, Clone)]
pub(super) struct ScanRow {
    pub checkpoint: Checkpoint,
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    staff_only: bool,
    org_id: String,
    requester: Option<String>,
    participants: Vec<String>,
    partner_id: Option<String>,
}

impl ScanRow {
    pub fn as_feed_row(&self) -> FeedRow<'_> {
        FeedRow {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            staff_only: self.staff_only,
            org_id: &self.org_id,
            requester: self.requester.as_deref(),
            participants: &self.participants,
            partner_id: self.partner_id.as_deref(),
        }
    }

    fn try_from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let tx_id: i64 = row.try_get("tx_id")?;
        let position: i64 = row.try_get("position")?;
        Ok(Self {
            checkpoint: Checkpoint { tx_id, position },
            position,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            event_type: row.try_get("event_type")?,
            staff_only: row.try_get("staff_only")?,
            org_id: row.try_get("org_id")?,
            requester: row.try_get("requester")?,
            participants: row.try_get("participants")?,
            partner_id: row.try_get("partner_id")?,
        })
    }
}

/// The next `bound` events of the whole log after `after`, in catch-up order, from finished
/// transactions only (what the audit API reads).
pub(super) async fn log(
    client: &impl GenericClient,
    after: Checkpoint,
    bound: i64,
) -> Result<Vec<ScanRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT tx_id::text::bigint AS tx_id, position, aggregate_type, aggregate_id, \
                    event_type, false AS staff_only, '' AS org_id, NULL::text AS requester, \
                    '{}'::text[] AS participants, NULL::text AS partner_id \
               FROM events \
              WHERE (tx_id, position) > ($1::text::xid8, $2) \
                AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
              ORDER BY events.tx_id, events.position LIMIT $3",
            &[&after.tx_id.to_string(), &after.position, &bound],
        )
        .await?;
    rows.iter().map(ScanRow::try_from_row).collect()
}

/// The next `bound` rows of the feed index under any of `audiences` after `after`, in catch-up
/// order, with their streams' audience facts. Each audience is read through its own index range
/// and at most `bound` rows of each are merged, so the cost is one probe per audience plus the
/// rows kept, whatever the size of the log; the merged first `bound` rows are exactly the first
/// `bound` rows of the union. An event filed under two of the audiences appears twice, one
/// after the other.
pub(super) async fn index(
    client: &impl GenericClient,
    audiences: &[String],
    after: Checkpoint,
    bound: i64,
) -> Result<Vec<ScanRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "WITH scanned AS ( \
                 SELECT f.* FROM unnest($1::text[]) AS a(audience) \
                 CROSS JOIN LATERAL ( \
                     SELECT i.tx_id, i.position, i.aggregate_type, i.aggregate_id, \
                            i.event_type, i.staff_only, i.audience \
                       FROM feed_index i \
                      WHERE i.audience = a.audience AND (i.tx_id, i.position) > ($2, $3) \
                      ORDER BY i.tx_id, i.position LIMIT $4) f \
                 ORDER BY f.tx_id, f.position LIMIT $4) \
             SELECT s.tx_id, s.position, s.aggregate_type, s.aggregate_id, s.event_type, \
                    s.staff_only, \
                    coalesce(st.org_id, split_part(s.audience, ':', 2)) AS org_id, \
                    st.requester, coalesce(st.participants, '{}') AS participants, \
                    st.partner_id \
               FROM scanned s \
               LEFT JOIN feed_streams st \
                 ON st.aggregate_type = s.aggregate_type AND st.aggregate_id = s.aggregate_id \
              ORDER BY s.tx_id, s.position",
            &[&audiences, &after.tx_id, &after.position, &bound],
        )
        .await?;
    rows.iter().map(ScanRow::try_from_row).collect()
}

/// The events at `positions`, in any order.
pub(super) async fn events(
    client: &impl GenericClient,
    positions: &[i64],
) -> Result<Vec<StoredEvent>, subdesk_projections::ProjectionError> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY($1)");
    client
        .query(&sql, &[&positions])
        .await?
        .iter()
        .map(StoredEvent::try_from)
        .collect()
}
