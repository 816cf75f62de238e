//! Sealing the events written before sealing existed: `subdesk privacy seal-existing`.
//!
//! Events appended before migration V23 hold personal data in plain text, out of an
//! erasure's reach. This pass seals them in place, in one transaction:
//!
//! 1. it locks the log against appends (`SHARE ROW EXCLUSIVE`: commands wait, every read goes
//!    on and sees the log as it was until the commit);
//! 2. it reads every stream in sequence order through a cursor, a few thousand events at a
//!    time; a stream with a plain event that holds personal data is rewritten from that event
//!    to its end: the plain events sealed (under their subjects' keys, made as needed; a
//!    subject erased already gets a key that is destroyed at once, its id added to the
//!    erasure so that the erasure's background work runs again), every hash recomputed, since
//!    each chains the one before, and every old hash kept in `chain_anchors` (migration V25,
//!    whose trigger lets exactly this change through and nothing else);
//! 3. it checks, in memory, that every stream it rewrites verifies before (a pass over a
//!    broken chain would re-hash over the break and hide it) and that every event it seals
//!    opens back to exactly what it held; otherwise nothing is committed. `subdesk verify`
//!    later checks the anchors against the stored rows (see `audit::anchors`).
//!
//! Kept: `position`, `tx_id`, stream, sequence, type and `recorded_at` of every event, so
//! checkpoints, cursors, feeds and receipts still point where they did; read models need no
//! rebuild (they hold what the events say, which has not changed), except after an earlier
//! erasure, whose background part then runs again.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subdesk_projections::privacy::{self, fields, seal, DataKey, MasterKey, PrivacyError};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::audit::chain::canonical;

/// Events fetched from the cursor at a time.
const FETCH: i64 = 2000;
/// Events written per round of statements.
const FLUSH: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
    #[error(transparent)]
    Projection(#[from] subdesk_projections::ProjectionError),
    #[error(
        "the sealed log would not verify ({0}): nothing was committed; this is a bug, please \
         report it"
    )]
    Unverified(String),
    #[error(
        "stream {aggregate_type}/{aggregate_id} does not verify at sequence {sequence} \
         (run `subdesk verify`): nothing was sealed, since re-hashing it would hide the break"
    )]
    BrokenChain {
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
    },
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SealReport {
    /// Events read (the whole log).
    pub events_read: u64,
    /// Streams with at least one event sealed.
    pub streams_rewritten: u64,
    /// Plain events that held personal data, sealed now.
    pub events_sealed: u64,
    /// Events whose hash moved (the sealed ones and the rest of their streams).
    pub events_rehashed: u64,
    /// Data keys made for subjects that had none.
    pub keys_created: u64,
    /// Subjects erased before this pass whose plain data it sealed under destroyed keys.
    pub erased_subjects: u64,
    /// Erasures whose background work runs again (their read models must lose that data).
    pub erasures_reopened: Vec<Uuid>,
    pub seconds: f64,
}

/// One event as the pass reads it.
struct Stored {
    sequence: i64,
    event_type: String,
    event_version: String,
    recorded_at: DateTime<Utc>,
    payload: Value,
    metadata: Value,
    /// jsonb's canonical text of the payload and metadata, as the chain hashes them.
    payload_text: String,
    metadata_text: String,
    hash: Vec<u8>,
}

/// A stream to rewrite from `first` (an index into `events`, which start at sequence 1).
struct Stream {
    aggregate_type: String,
    aggregate_id: String,
    events: Vec<Stored>,
    first: usize,
}

/// A subject's key for this pass, with its wrapped form (hex) to open what it sealed.
#[derive(Clone)]
struct Key {
    id: Uuid,
    key: DataKey,
    wrapped: String,
}

/// Keys by subject for this pass.
struct Keys<'m> {
    master: &'m MasterKey,
    known: HashMap<String, Key>,
    /// Digest -> the latest erasure of that subject.
    erased: HashMap<String, Uuid>,
    /// Destroyed keys made for erased subjects, by erasure.
    destroyed: HashMap<Uuid, Vec<Uuid>>,
    created: u64,
}

impl Keys<'_> {
    async fn resolve(
        &mut self,
        tx: &Transaction<'_>,
        subjects: &BTreeSet<String>,
    ) -> Result<(), RewriteError> {
        let missing: Vec<&String> = subjects
            .iter()
            .filter(|s| !self.known.contains_key(*s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let digests: Vec<String> = missing
            .iter()
            .map(|s| self.master.subject_digest(s))
            .collect();
        let mut stored: HashMap<String, (Uuid, Vec<u8>)> = HashMap::new();
        for row in tx
            .query(
                "SELECT key_id, subject, wrapped FROM subject_keys WHERE subject = ANY($1)",
                &[&digests],
            )
            .await?
        {
            stored.insert(
                row.try_get("subject")?,
                (row.try_get("key_id")?, row.try_get("wrapped")?),
            );
        }
        for (subject, digest) in missing.into_iter().zip(digests) {
            // Every plain event predates every erasure (erasures came after sealing), so an
            // erased subject's plain data is sealed under a key that is never stored, even if
            // they have a key again for what was written about them since.
            let (id, key, wrapped) = if let Some(erasure) = self.erased.get(&digest) {
                let id = Uuid::now_v7();
                self.destroyed.entry(*erasure).or_default().push(id);
                let key = DataKey::generate();
                // Never stored: held in memory only to check what it sealed.
                let wrapped = self.master.wrap(id, &key);
                (id, key, wrapped)
            } else if let Some((id, wrapped)) = stored.remove(&digest) {
                (id, self.master.unwrap_key(id, &wrapped)?, wrapped)
            } else {
                let id = Uuid::now_v7();
                let key = DataKey::generate();
                let wrapped = self.master.wrap(id, &key);
                tx.execute(
                    "INSERT INTO subject_keys (key_id, subject, wrapped) VALUES ($1, $2, $3)",
                    &[&id, &digest, &wrapped],
                )
                .await?;
                self.created += 1;
                (id, key, wrapped)
            };
            let wrapped = hex::encode(wrapped);
            self.known.insert(subject.clone(), Key { id, key, wrapped });
        }
        Ok(())
    }
}

/// Runs the pass (see the module doc) in `tx`, which the caller commits.
pub async fn seal_existing(
    tx: &Transaction<'_>,
    mut progress: impl FnMut(u64),
) -> Result<SealReport, RewriteError> {
    let started = Instant::now();
    let master = privacy::master()?;
    tx.batch_execute(
        "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE; \
         SET LOCAL subdesk.sealing_rewrite = 'on'; \
         SET LOCAL statement_timeout = 0; \
         DECLARE events_in_order NO SCROLL CURSOR FOR \
           SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, recorded_at, \
                  payload, metadata, payload::text AS payload_text, \
                  metadata::text AS metadata_text, hash \
             FROM events ORDER BY aggregate_type, aggregate_id, sequence",
    )
    .await?;
    let mut erased = HashMap::new();
    for row in tx
        .query(
            "SELECT DISTINCT ON (subject) subject, id FROM erasures \
              ORDER BY subject, requested_at DESC",
            &[],
        )
        .await?
    {
        erased.insert(row.try_get("subject")?, row.try_get("id")?);
    }
    let mut keys = Keys {
        master,
        known: HashMap::new(),
        erased,
        destroyed: HashMap::new(),
        created: 0,
    };
    let mut report = SealReport::default();
    let mut current: Option<(String, String, Vec<Stored>)> = None;
    let mut pending: Vec<Stream> = Vec::new();
    let mut pending_events = 0usize;
    loop {
        let rows = tx
            .query(&format!("FETCH FORWARD {FETCH} FROM events_in_order"), &[])
            .await?;
        let done = rows.is_empty();
        for row in rows {
            let aggregate_type: String = row.try_get("aggregate_type")?;
            let aggregate_id: String = row.try_get("aggregate_id")?;
            let event = Stored {
                sequence: row.try_get("sequence")?,
                event_type: row.try_get("event_type")?,
                event_version: row.try_get("event_version")?,
                recorded_at: row.try_get("recorded_at")?,
                payload: row.try_get("payload")?,
                metadata: row.try_get("metadata")?,
                payload_text: row.try_get("payload_text")?,
                metadata_text: row.try_get("metadata_text")?,
                hash: row.try_get("hash")?,
            };
            report.events_read += 1;
            match &mut current {
                Some((t, i, events)) if *t == aggregate_type && *i == aggregate_id => {
                    events.push(event);
                }
                _ => {
                    if let Some(stream) = current.take().map(to_rewrite).transpose()?.flatten() {
                        pending_events += stream.events.len() - stream.first;
                        pending.push(stream);
                    }
                    current = Some((aggregate_type, aggregate_id, vec![event]));
                }
            }
        }
        if done {
            if let Some(stream) = current.take().map(to_rewrite).transpose()?.flatten() {
                pending.push(stream);
            }
        }
        if pending_events >= FLUSH || (done && !pending.is_empty()) {
            flush(tx, &mut keys, std::mem::take(&mut pending), &mut report).await?;
            pending_events = 0;
        }
        progress(report.events_read);
        if done {
            break;
        }
    }
    tx.batch_execute("CLOSE events_in_order").await?;

    report.keys_created = keys.created;
    // One destroyed key per erased subject met.
    report.erased_subjects = keys.destroyed.values().map(|k| k.len() as u64).sum();
    for (erasure, key_ids) in &keys.destroyed {
        tx.execute(
            "UPDATE erasures SET key_ids = key_ids || $2, status = 'running', \
                    completed_at = NULL, error = NULL \
              WHERE id = $1",
            &[erasure, key_ids],
        )
        .await?;
        report.erasures_reopened.push(*erasure);
    }
    if !keys.destroyed.is_empty() {
        tx.execute(
            "SELECT pg_notify($1, '')",
            &[&crate::privacy::erase::ERASURES_CHANNEL],
        )
        .await?;
    }

    // The planner's picture of the anchors, for `verify`'s look-ups right after.
    tx.batch_execute("ANALYZE chain_anchors").await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The stream as a rewrite from its first plain event with personal data, if it has one;
/// refused when its chain does not verify as stored.
fn to_rewrite(
    (aggregate_type, aggregate_id, events): (String, String, Vec<Stored>),
) -> Result<Option<Stream>, RewriteError> {
    let Some(first) = events.iter().position(|e| {
        !e.event_version.ends_with(privacy::SEALED_SUFFIX)
            && !fields::spots(&aggregate_type, &e.event_type, &e.payload, &e.metadata).is_empty()
    }) else {
        return Ok(None);
    };
    let mut previous: &[u8] = &[];
    for (i, event) in events.iter().enumerate() {
        let content = canonical(
            &aggregate_type,
            &aggregate_id,
            event.sequence,
            &event.event_type,
            &event.event_version,
            event.recorded_at,
            &event.payload_text,
            &event.metadata_text,
        );
        let computed = Sha256::new()
            .chain_update(previous)
            .chain_update(&content)
            .finalize();
        let contiguous = usize::try_from(event.sequence).ok() == Some(i + 1);
        if !contiguous || computed.as_slice() != event.hash {
            return Err(RewriteError::BrokenChain {
                aggregate_type,
                aggregate_id,
                sequence: event.sequence,
            });
        }
        previous = &event.hash;
    }
    Ok(Some(Stream {
        aggregate_type,
        aggregate_id,
        events,
        first,
    }))
}

/// Seals, re-hashes, anchors and writes `streams`.
async fn flush(
    tx: &Transaction<'_>,
    keys: &mut Keys<'_>,
    streams: Vec<Stream>,
    report: &mut SealReport,
) -> Result<(), RewriteError> {
    // Seal every plain event with personal data.
    let mut spots_of: Vec<Vec<Vec<fields::Spot>>> = Vec::with_capacity(streams.len());
    let mut subjects = BTreeSet::new();
    for stream in &streams {
        let spots: Vec<Vec<fields::Spot>> = stream.events[stream.first..]
            .iter()
            .map(|e| {
                if e.event_version.ends_with(privacy::SEALED_SUFFIX) {
                    Vec::new()
                } else {
                    fields::spots(
                        &stream.aggregate_type,
                        &e.event_type,
                        &e.payload,
                        &e.metadata,
                    )
                }
            })
            .collect();
        subjects.extend(spots.iter().flatten().map(|s| s.subject.clone()));
        spots_of.push(spots);
    }
    keys.resolve(tx, &subjects).await?;
    let mut sealed: Vec<Vec<Option<(String, Value, Value)>>> = Vec::with_capacity(streams.len());
    let (mut payloads, mut metadatas) = (Vec::new(), Vec::new());
    for (stream, spots) in streams.iter().zip(&spots_of) {
        let mut of_stream = Vec::with_capacity(spots.len());
        for (event, spots) in stream.events[stream.first..].iter().zip(spots) {
            if spots.is_empty() {
                of_stream.push(None);
                continue;
            }
            let (mut version, mut payload, mut metadata) = (
                event.event_version.clone(),
                event.payload.clone(),
                event.metadata.clone(),
            );
            seal::seal(&mut version, &mut payload, &mut metadata, spots, |s| {
                keys.known.get(s).map(|k| (k.id, k.key.clone()))
            })?;
            opens_back(keys, spots, event, (&version, &payload, &metadata))?;
            payloads.push(payload.clone());
            metadatas.push(metadata.clone());
            of_stream.push(Some((version, payload, metadata)));
        }
        sealed.push(of_stream);
    }
    // jsonb's canonical text of what is sealed, as the chain hashes it.
    let mut texts = tx
        .query(
            "SELECT p::text AS payload, m::text AS metadata \
               FROM unnest($1::jsonb[], $2::jsonb[]) WITH ORDINALITY AS x(p, m, i) ORDER BY i",
            &[&payloads, &metadatas],
        )
        .await?
        .into_iter();

    let (mut types, mut ids, mut sequences) = (Vec::new(), Vec::new(), Vec::new());
    let (mut old_hashes, mut new_hashes, mut marks) = (Vec::new(), Vec::new(), Vec::new());
    let (mut versions, mut new_payloads, mut new_metadatas) = (Vec::new(), Vec::new(), Vec::new());
    for (stream, sealed) in streams.iter().zip(sealed) {
        let mut previous = match stream.first {
            0 => Vec::new(),
            n => stream.events[n - 1].hash.clone(),
        };
        report.streams_rewritten += 1;
        for (event, sealed) in stream.events[stream.first..].iter().zip(sealed) {
            let (version, payload_text, metadata_text) = match &sealed {
                Some((version, _, _)) => {
                    let row = texts.next().ok_or_else(|| {
                        RewriteError::Unverified("a sealed payload came back missing".into())
                    })?;
                    (
                        version.clone(),
                        row.try_get::<_, String>("payload")?,
                        row.try_get::<_, String>("metadata")?,
                    )
                }
                None => (
                    event.event_version.clone(),
                    event.payload_text.clone(),
                    event.metadata_text.clone(),
                ),
            };
            let content = canonical(
                &stream.aggregate_type,
                &stream.aggregate_id,
                event.sequence,
                &event.event_type,
                &version,
                event.recorded_at,
                &payload_text,
                &metadata_text,
            );
            let new_hash = Sha256::new()
                .chain_update(&previous)
                .chain_update(&content)
                .finalize()
                .to_vec();
            previous.clone_from(&new_hash);
            report.events_rehashed += 1;
            types.push(stream.aggregate_type.as_str());
            ids.push(stream.aggregate_id.as_str());
            sequences.push(event.sequence);
            old_hashes.push(event.hash.clone());
            new_hashes.push(new_hash);
            marks.push(sealed.is_some());
            // `None`: only the hash moves.
            match sealed {
                Some((version, payload, metadata)) => {
                    report.events_sealed += 1;
                    versions.push(version);
                    new_payloads.push(Some(payload));
                    new_metadatas.push(Some(metadata));
                }
                None => {
                    versions.push(event.event_version.clone());
                    new_payloads.push(None);
                    new_metadatas.push(None);
                }
            }
        }
    }
    // The anchors first: the log's trigger lets a row change only to the hash its anchor
    // records. A second pass over a rewritten event keeps its first old hash.
    tx.execute(
        "INSERT INTO chain_anchors (aggregate_type, aggregate_id, sequence, old_hash, new_hash, sealed) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bool[]) \
         ON CONFLICT (aggregate_type, aggregate_id, sequence) DO UPDATE \
            SET new_hash = EXCLUDED.new_hash, sealed = chain_anchors.sealed OR EXCLUDED.sealed, \
                rewritten_at = now()",
        &[&types, &ids, &sequences, &old_hashes, &new_hashes, &marks],
    )
    .await?;
    tx.execute(
        "UPDATE events e \
            SET event_version = x.version, payload = coalesce(x.payload, e.payload), \
                metadata = coalesce(x.metadata, e.metadata), hash = x.hash \
           FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::jsonb[], \
                       $6::jsonb[], $7::bytea[]) \
                AS x(aggregate_type, aggregate_id, sequence, version, payload, metadata, hash) \
          WHERE e.aggregate_type = x.aggregate_type AND e.aggregate_id = x.aggregate_id \
            AND e.sequence = x.sequence",
        &[
            &types,
            &ids,
            &sequences,
            &versions,
            &new_payloads,
            &new_metadatas,
            &new_hashes,
        ],
    )
    .await?;
    Ok(())
}

/// Checks that a sealed event opens back to exactly what `event` held, with the keys of its
/// subjects (those of erased subjects included: they are still in memory).
fn opens_back(
    keys: &Keys<'_>,
    spots: &[fields::Spot],
    event: &Stored,
    (version, payload, metadata): (&str, &Value, &Value),
) -> Result<(), RewriteError> {
    let wrapped: serde_json::Map<String, Value> = spots
        .iter()
        .filter_map(|spot| keys.known.get(&spot.subject))
        .map(|k| (k.id.to_string(), Value::String(k.wrapped.clone())))
        .collect();
    let (mut version, mut payload, mut metadata) =
        (version.to_string(), payload.clone(), metadata.clone());
    seal::open(
        &mut version,
        &mut payload,
        &mut metadata,
        Some(&Value::Object(wrapped)),
    )?;
    if version == event.event_version && payload == event.payload && metadata == event.metadata {
        Ok(())
    } else {
        Err(RewriteError::Unverified(format!(
            "event {} of a stream does not open back to what it held",
            event.sequence
        )))
    }
}
