//! Internal notes written as deltas. An agent's internal comment changes three columns of its
//! case's `case_view` row (the version, the last activity time, the count of internal
//! comments) and adds a timeline row; it mails nobody. When every event of a case in a batch
//! is such a note, the projection updates those columns in place instead of loading the whole
//! row (as jsonb) and writing it back: the rows end exactly as the fold ([`super::fold`])
//! leaves them, which `tests/api/projections.rs` checks against a replay through the fold.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::json;
use subdesk_aggregates::support_case::{SupportCaseEvent, Visibility};
use uuid::Uuid;

use super::fold::kind_of;
use super::tables::TimelineRow;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::rows;

/// The timeline row of `event` if it is an internal note without a reply clock (what the
/// fold records for it), else `None`.
pub(super) fn note(
    id: Uuid,
    stored: &StoredEvent,
    event: &SupportCaseEvent,
) -> Option<TimelineRow> {
    let SupportCaseEvent::CommentAdded(e) = event else {
        return None;
    };
    if e.visibility != Visibility::Internal || e.next_reply.is_some() {
        return None;
    }
    Some(TimelineRow {
        case_id: id,
        sequence: stored.sequence,
        kind: kind_of(stored),
        actor_id: e.author.id.clone(),
        actor_role: e.author.role.as_str().into(),
        visibility: "internal".into(),
        body: Some(e.body.clone()),
        detail: json!({"comment_id": e.comment_id}),
        at: e.at,
    })
}

/// What a case's notes in one batch change.
struct Delta {
    version: i64,
    at: DateTime<Utc>,
    notes: i32,
}

/// Applies `notes` (timeline rows of notes, in log order) to their cases' rows and timelines.
/// A case whose row does not exist (its opening never seen) gets nothing, as in the fold.
pub(super) async fn write(
    tx: &Transaction<'_>,
    notes: Vec<TimelineRow>,
) -> Result<(), ProjectionError> {
    if notes.is_empty() {
        return Ok(());
    }
    let mut deltas: HashMap<Uuid, Delta> = HashMap::new();
    for note in &notes {
        let delta = deltas.entry(note.case_id).or_insert(Delta {
            version: note.sequence,
            at: note.at,
            notes: 0,
        });
        delta.version = delta.version.max(note.sequence);
        delta.at = delta.at.max(note.at);
        delta.notes += 1;
    }
    let mut ids = Vec::with_capacity(deltas.len());
    let mut versions = Vec::with_capacity(deltas.len());
    let mut ats = Vec::with_capacity(deltas.len());
    let mut counts = Vec::with_capacity(deltas.len());
    for (id, delta) in &deltas {
        ids.push(*id);
        versions.push(delta.version);
        // As text, for PostgreSQL to round to microseconds exactly as it does for the fold's
        // rows (written through jsonb); a bound timestamp would be truncated instead.
        ats.push(
            serde_json::to_value(delta.at)
                .ok()
                .and_then(|at| at.as_str().map(str::to_string))
                .unwrap_or_else(|| delta.at.to_rfc3339()),
        );
        counts.push(delta.notes);
    }
    let updated: HashSet<Uuid> = rows::query(
        tx,
        "UPDATE case_view c \
            SET version = d.version, \
                last_activity_at = greatest(c.last_activity_at, d.at), \
                internal_comments = c.internal_comments + d.notes \
           FROM unnest($1::uuid[], $2::bigint[], $3::text[]::timestamptz[], $4::int[]) \
                AS d(id, version, at, notes) \
          WHERE c.id = d.id \
         RETURNING c.id",
        &[&ids, &versions, &ats, &counts],
    )
    .await?
    .iter()
    .map(|row| row.try_get("id"))
    .collect::<Result<_, tokio_postgres::Error>>()?;
    let timeline: Vec<TimelineRow> = notes
        .into_iter()
        .filter(|note| updated.contains(&note.case_id))
        .collect();
    rows::insert(tx, "case_timeline", &timeline).await?;
    Ok(())
}
