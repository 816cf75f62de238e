//! Recomputes every stream's hash chain from the stored columns and names the first broken
//! link. The canonical content is rebuilt here in Rust, byte for byte as migration V1's
//! `events_canonical` defines it, so a verification does not trust the database's trigger.

use std::time::Instant;

use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subdesk_projections::ProjectionError;
use tokio_postgres::types::ToSql;

pub use super::anchors::AnchorsReport;
pub use super::chain::{canonical, BrokenLink, Scope};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    pub events: u64,
    pub streams: u64,
    pub seconds: f64,
    pub first_broken: Option<BrokenLink>,
    /// The anchors of events sealed in place (`subdesk privacy seal-existing`), checked when
    /// every chain is intact.
    pub anchors: AnchorsReport,
}

/// Verifies the chains of the streams in `scope`, then their anchors; `progress` gets the
/// running event count.
pub async fn verify(
    client: &tokio_postgres::Client,
    scope: &Scope,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, ProjectionError> {
    let started = Instant::now();
    // `payload::text` is jsonb's canonical text form: sorted keys, fixed spacing.
    let sql = "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
                      recorded_at, payload::text AS payload, metadata::text AS metadata, hash \
                 FROM events \
                WHERE ($1::text IS NULL OR aggregate_type = $1) \
                  AND ($2::text IS NULL OR aggregate_id = $2) \
                ORDER BY aggregate_type, aggregate_id, sequence";
    let params: [&(dyn ToSql + Sync); 2] = [&scope.aggregate_type, &scope.aggregate_id];
    let rows = client.query_raw(sql, params).await?;
    let mut rows = std::pin::pin!(rows);

    let mut events = 0u64;
    let mut streams = 0u64;
    let mut current: Option<(String, String)> = None;
    let mut previous: Vec<u8> = Vec::new();
    let mut expected_sequence = 1i64;
    let mut first_broken = None;

    while let Some(row) = rows.try_next().await? {
        let aggregate_type: &str = row.try_get("aggregate_type")?;
        let aggregate_id: &str = row.try_get("aggregate_id")?;
        let sequence: i64 = row.try_get("sequence")?;
        let stored: &[u8] = row.try_get("hash")?;
        let same_stream = current
            .as_ref()
            .is_some_and(|(t, i)| t == aggregate_type && i == aggregate_id);
        if !same_stream {
            current = Some((aggregate_type.to_string(), aggregate_id.to_string()));
            previous.clear();
            expected_sequence = 1;
            streams += 1;
        }
        events += 1;
        if events.is_multiple_of(10_000) {
            progress(events);
        }
        let broken = |problem: &str, expected: String, found: String| BrokenLink {
            aggregate_type: aggregate_type.to_string(),
            aggregate_id: aggregate_id.to_string(),
            sequence,
            problem: problem.to_string(),
            expected,
            found,
        };
        if sequence != expected_sequence {
            first_broken = Some(broken(
                "missing_event",
                format!("sequence {expected_sequence}"),
                format!("sequence {sequence}"),
            ));
            break;
        }
        let content = canonical(
            aggregate_type,
            aggregate_id,
            sequence,
            row.try_get("event_type")?,
            row.try_get("event_version")?,
            row.try_get("recorded_at")?,
            row.try_get("payload")?,
            row.try_get("metadata")?,
        );
        let mut hasher = Sha256::new();
        hasher.update(&previous);
        hasher.update(&content);
        let computed = hasher.finalize();
        if computed.as_slice() != stored {
            first_broken = Some(broken(
                "hash_mismatch",
                hex::encode(computed),
                hex::encode(stored),
            ));
            break;
        }
        previous.clear();
        previous.extend_from_slice(stored);
        expected_sequence += 1;
    }
    progress(events);
    let mut anchors = AnchorsReport::default();
    if first_broken.is_none() {
        anchors = super::anchors::check(client, scope).await?;
        first_broken.clone_from(&anchors.first_mismatch);
    }
    Ok(VerifyReport {
        ok: first_broken.is_none(),
        events,
        streams,
        seconds: started.elapsed().as_secs_f64(),
        first_broken,
        anchors,
    })
}

/// The first event of an earlier export that the log no longer holds as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AnchorMismatch {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    /// `missing_event` (deleted, even at a stream's end) or `hash_mismatch` (rewritten, even
    /// if the chain was recomputed after the export).
    pub problem: String,
    pub exported: String,
    pub found: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnchorReport {
    pub ok: bool,
    /// Events of the export compared with the log.
    pub events: u64,
    pub first_mismatch: Option<AnchorMismatch>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("reading the export: {0}")]
    Read(#[from] std::io::Error),
    #[error("line {line} of the export is not an exported event: {error}")]
    Parse { line: u64, error: String },
}

#[derive(serde::Deserialize)]
struct Exported {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    hash: String,
}

/// Compares the log with an earlier export (JSON Lines from `subdesk export`): every exported
/// event must still be in the log with the hash it had, or with the hash its anchor records
/// for it, when `subdesk privacy seal-existing` sealed it in place since. The chain alone cannot show a stream
/// that lost its newest events, nor a stream rewritten and re-hashed by someone who can write
/// the table; an export kept elsewhere can.
pub async fn verify_against(
    client: &tokio_postgres::Client,
    export: impl std::io::BufRead,
    mut progress: impl FnMut(u64),
) -> Result<AnchorReport, AnchorError> {
    const BATCH: usize = 5000;
    let mut batch: Vec<Exported> = Vec::with_capacity(BATCH);
    let mut events = 0u64;
    let mut lines = export.lines();
    let mut line_number = 0u64;
    loop {
        let line = lines.next().transpose()?;
        if let Some(line) = &line {
            line_number += 1;
            if line.trim().is_empty() {
                continue;
            }
            let exported: Exported =
                serde_json::from_str(line).map_err(|error| AnchorError::Parse {
                    line: line_number,
                    error: error.to_string(),
                })?;
            batch.push(exported);
        }
        if batch.len() >= BATCH || (line.is_none() && !batch.is_empty()) {
            if let Some(mismatch) = compare(client, &batch).await? {
                return Ok(AnchorReport {
                    ok: false,
                    events: events + batch.len() as u64,
                    first_mismatch: Some(mismatch),
                });
            }
            events += batch.len() as u64;
            progress(events);
            batch.clear();
        }
        if line.is_none() {
            return Ok(AnchorReport {
                ok: true,
                events,
                first_mismatch: None,
            });
        }
    }
}

async fn compare(
    client: &tokio_postgres::Client,
    batch: &[Exported],
) -> Result<Option<AnchorMismatch>, tokio_postgres::Error> {
    let types: Vec<&str> = batch.iter().map(|e| e.aggregate_type.as_str()).collect();
    let ids: Vec<&str> = batch.iter().map(|e| e.aggregate_id.as_str()).collect();
    let sequences: Vec<i64> = batch.iter().map(|e| e.sequence).collect();
    let rows = client
        .query(
            "SELECT x.i, encode(e.hash, 'hex') AS hash, \
                    CASE WHEN a.new_hash = e.hash THEN encode(a.old_hash, 'hex') END AS anchored \
               FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY \
                    AS x(aggregate_type, aggregate_id, sequence, i) \
               LEFT JOIN events e ON e.aggregate_type = x.aggregate_type \
                    AND e.aggregate_id = x.aggregate_id AND e.sequence = x.sequence \
               LEFT JOIN chain_anchors a ON a.aggregate_type = x.aggregate_type \
                    AND a.aggregate_id = x.aggregate_id AND a.sequence = x.sequence \
              ORDER BY x.i",
            &[&types, &ids, &sequences],
        )
        .await?;
    for (exported, row) in batch.iter().zip(rows) {
        let found: Option<String> = row.try_get("hash")?;
        // An event sealed in place since the export: its anchor holds the hash exported (and
        // `verify` checks that the event still gives that hash back).
        let anchored: Option<String> = row.try_get("anchored")?;
        let problem = match &found {
            None => "missing_event",
            Some(hash) if *hash != exported.hash && anchored != Some(exported.hash.clone()) => {
                "hash_mismatch"
            }
            Some(_) => continue,
        };
        return Ok(Some(AnchorMismatch {
            aggregate_type: exported.aggregate_type.clone(),
            aggregate_id: exported.aggregate_id.clone(),
            sequence: exported.sequence,
            problem: problem.to_string(),
            exported: exported.hash.clone(),
            found,
        }));
    }
    Ok(None)
}
