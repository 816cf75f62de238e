//! Checking the chain anchors that `subdesk privacy seal-existing` leaves (migration V25).
//!
//! When the pass sealed an event written in plain text, the event's stored bytes and its hash
//! changed, and so did the hash of every later event of its stream. Each such event keeps its
//! old hash in `chain_anchors`. This check recomputes each old hash from what the event holds
//! now: a sealed event is opened (its plain fields, its version without `+sealed`), an event
//! that only moved with the chain is taken as stored, and each link hashes on from the old
//! hash of the event before (or its stored hash, when the pass left that one alone). So the
//! anchors prove that sealing changed the form of those events and nothing they said.
//!
//! An erased subject's sealed fields no longer open: that link cannot be recomputed and is
//! counted as `unverifiable`, not as broken (the link after it is still checked, from the
//! anchored old hash).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subdesk_projections::privacy::{seal, SEALED_SUFFIX};
use subdesk_projections::ProjectionError;
use tokio_postgres::GenericClient;

use super::chain::{canonical, BrokenLink, Scope};

/// Anchors read and checked per round.
const PAGE: i64 = 1000;

/// What the anchor check found.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AnchorsReport {
    /// Anchors whose old hash was recomputed and matched.
    pub checked: u64,
    /// Anchors of events whose sealed data an erasure destroyed: not recomputable.
    pub unverifiable: u64,
    /// The first anchor whose old hash the event does not give back.
    pub first_mismatch: Option<BrokenLink>,
}

/// One anchored event, as read.
struct Anchored {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    position: i64,
    old_hash: Vec<u8>,
    /// The old hash of the event before: its anchor's, else its stored hash (empty at 1).
    previous: Vec<u8>,
    event_type: String,
    event_version: String,
    recorded_at: DateTime<Utc>,
    /// Opened when the pass sealed it; as stored (with their canonical text) otherwise.
    payload: Value,
    metadata: Value,
    texts: Option<(String, String)>,
    erased: bool,
}

/// Checks the anchors of the streams in `scope` (see the module doc).
pub async fn check(
    client: &impl GenericClient,
    scope: &Scope,
) -> Result<AnchorsReport, ProjectionError> {
    // A page of anchors by their primary key first, then the joins for just that page (joined
    // in one query, the planner hashed the whole events table for every page).
    let sql = format!(
        "WITH page AS MATERIALIZED ( \
           SELECT * FROM chain_anchors a \
            WHERE (a.aggregate_type, a.aggregate_id, a.sequence) > ($3::text, $4::text, $5::bigint) \
              AND ($1::text IS NULL OR a.aggregate_type = $1) \
              AND ($2::text IS NULL OR a.aggregate_id = $2) \
            ORDER BY a.aggregate_type, a.aggregate_id, a.sequence \
            LIMIT $6::bigint), \
         anchored AS MATERIALIZED ( \
           SELECT a.aggregate_type, a.aggregate_id, a.sequence, a.old_hash, a.sealed, \
                  coalesce(pa.old_hash, p.hash, ''::bytea) AS previous, \
                  e.position, e.event_type, e.event_version, e.recorded_at, e.payload, \
                  e.metadata, e.payload::text AS payload_text, e.metadata::text AS metadata_text \
             FROM page a \
             JOIN events e ON e.aggregate_type = a.aggregate_type \
                          AND e.aggregate_id = a.aggregate_id AND e.sequence = a.sequence \
             LEFT JOIN chain_anchors pa ON pa.aggregate_type = a.aggregate_type \
                          AND pa.aggregate_id = a.aggregate_id AND pa.sequence = a.sequence - 1 \
             LEFT JOIN events p ON p.aggregate_type = a.aggregate_type \
                          AND p.aggregate_id = a.aggregate_id AND p.sequence = a.sequence - 1) \
         SELECT anchored.*, {} FROM anchored \
          ORDER BY aggregate_type, aggregate_id, sequence",
        subdesk_projections::privacy::SEALED_KEYS
    );
    let mut report = AnchorsReport::default();
    let mut after = (String::new(), String::new(), 0i64);
    loop {
        let rows = client
            .query(
                &sql,
                &[
                    &scope.aggregate_type,
                    &scope.aggregate_id,
                    &after.0,
                    &after.1,
                    &after.2,
                    &PAGE,
                ],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(report);
        };
        after = (
            last.try_get("aggregate_type")?,
            last.try_get("aggregate_id")?,
            last.try_get("sequence")?,
        );
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            page.push(read(row)?);
        }
        // jsonb's canonical text of every opened payload and metadata.
        let opened: Vec<&Anchored> = page
            .iter()
            .filter(|a| a.texts.is_none() && !a.erased)
            .collect();
        let payloads: Vec<&Value> = opened.iter().map(|a| &a.payload).collect();
        let metadatas: Vec<&Value> = opened.iter().map(|a| &a.metadata).collect();
        let mut texts = client
            .query(
                "SELECT p::text AS payload, m::text AS metadata \
                   FROM unnest($1::jsonb[], $2::jsonb[]) WITH ORDINALITY AS x(p, m, i) \
                  ORDER BY i",
                &[&payloads, &metadatas],
            )
            .await?
            .into_iter();
        for anchored in &page {
            if anchored.erased {
                report.unverifiable += 1;
                continue;
            }
            let (payload, metadata) = match &anchored.texts {
                Some(texts) => texts.clone(),
                None => {
                    let row = texts.next().ok_or_else(|| {
                        ProjectionError::Internal("a canonical text came back missing".into())
                    })?;
                    (row.try_get("payload")?, row.try_get("metadata")?)
                }
            };
            let content = canonical(
                &anchored.aggregate_type,
                &anchored.aggregate_id,
                anchored.sequence,
                &anchored.event_type,
                &anchored.event_version,
                anchored.recorded_at,
                &payload,
                &metadata,
            );
            let computed = Sha256::new()
                .chain_update(&anchored.previous)
                .chain_update(&content)
                .finalize();
            if computed.as_slice() != anchored.old_hash {
                report.first_mismatch = Some(BrokenLink {
                    aggregate_type: anchored.aggregate_type.clone(),
                    aggregate_id: anchored.aggregate_id.clone(),
                    sequence: anchored.sequence,
                    problem: "anchor_mismatch".into(),
                    expected: hex::encode(&anchored.old_hash),
                    found: hex::encode(computed),
                });
                return Ok(report);
            }
            report.checked += 1;
        }
    }
}

fn read(row: &tokio_postgres::Row) -> Result<Anchored, ProjectionError> {
    let sealed: bool = row.try_get("sealed")?;
    let mut anchored = Anchored {
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        position: row.try_get("position")?,
        old_hash: row.try_get("old_hash")?,
        previous: row.try_get("previous")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        recorded_at: row.try_get("recorded_at")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        texts: None,
        erased: false,
    };
    if !sealed || !anchored.event_version.ends_with(SEALED_SUFFIX) {
        anchored.texts = Some((row.try_get("payload_text")?, row.try_get("metadata_text")?));
        return Ok(anchored);
    }
    let keys: Option<Value> = row.try_get("keys")?;
    let present = |id: &uuid::Uuid| keys.as_ref().and_then(|k| k.get(id.to_string())).is_some();
    anchored.erased = !seal::key_ids(&anchored.payload, &anchored.metadata)
        .iter()
        .all(present);
    if anchored.erased {
        return Ok(anchored);
    }
    seal::open(
        &mut anchored.event_version,
        &mut anchored.payload,
        &mut anchored.metadata,
        keys.as_ref(),
    )
    .map_err(|source| ProjectionError::Sealed {
        position: anchored.position,
        source,
    })?;
    Ok(anchored)
}
