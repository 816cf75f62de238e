//! The data keys of the command path: found (or made) for the subjects of the events a
//! command appends, and found again to open the events it reads.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::Mutex;

use cqrs_es::persist::SerializedEvent;
use deadpool_postgres::Pool;
use lru::LruCache;
use serde_json::Value;
use subdesk_projections::privacy::{self, seal, DataKey, PrivacyError};
use tokio_postgres::GenericClient;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
    #[error(
        "this database's data keys are wrapped by another master key (fingerprint {stored}; \
         this process has {ours}): start it with the master key the database was set up with"
    )]
    OtherMaster { stored: String, ours: String },
}

/// A key made for a subject that had none, to be stored with the first event that uses it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key_id: Uuid,
    /// The keyed digest that names the subject in `subject_keys`.
    pub digest: String,
    pub wrapped: Vec<u8>,
    subject: String,
    key: DataKey,
}

/// The keys of one append's subjects.
#[derive(Debug, Default)]
pub struct Resolved {
    keys: HashMap<String, (Uuid, DataKey)>,
    /// Keys that do not exist yet: they commit with the events (or not at all).
    pub new: Vec<NewKey>,
}

impl Resolved {
    pub fn key_of(&self, subject: &str) -> Option<(Uuid, DataKey)> {
        self.keys.get(subject).cloned()
    }
}

/// Data keys by subject (normalised address), unwrapped, for the command path. Only keys
/// known to be stored are cached; [`Keyring::forget`] drops them (an erasure).
pub struct Keyring {
    cache: Mutex<LruCache<String, (Uuid, DataKey)>>,
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl Keyring {
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, (Uuid, DataKey)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of every subject: from the cache, from `subject_keys`, or made now.
    pub async fn resolve(
        &self,
        pool: &Pool,
        subjects: &BTreeSet<String>,
    ) -> Result<Resolved, KeyringError> {
        let mut resolved = Resolved::default();
        let mut missing = Vec::new();
        {
            let mut cache = self.cache();
            for subject in subjects {
                match cache.get(subject) {
                    Some(found) => {
                        resolved.keys.insert(subject.clone(), found.clone());
                    }
                    None => missing.push(subject.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(resolved);
        }
        let master = privacy::master()?;
        let digests: Vec<String> = missing.iter().map(|s| master.subject_digest(s)).collect();
        let client = pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT key_id, subject, wrapped FROM subject_keys WHERE subject = ANY($1)",
            )
            .await?;
        let mut stored: HashMap<String, (Uuid, Vec<u8>)> = HashMap::new();
        for row in client.query(&statement, &[&digests]).await? {
            stored.insert(
                row.try_get("subject")?,
                (row.try_get("key_id")?, row.try_get("wrapped")?),
            );
        }
        let mut cache = self.cache();
        for (subject, digest) in missing.into_iter().zip(digests) {
            match stored.remove(&digest) {
                Some((key_id, wrapped)) => {
                    let key = master.unwrap_key(key_id, &wrapped)?;
                    cache.put(subject.clone(), (key_id, key.clone()));
                    resolved.keys.insert(subject, (key_id, key));
                }
                None => {
                    let key_id = Uuid::now_v7();
                    let key = DataKey::generate();
                    let wrapped = master.wrap(key_id, &key);
                    resolved.keys.insert(subject.clone(), (key_id, key.clone()));
                    resolved.new.push(NewKey {
                        key_id,
                        digest,
                        wrapped,
                        subject,
                        key,
                    });
                }
            }
        }
        Ok(resolved)
    }

    /// New keys that committed with their events: cached from now on.
    pub fn remember(&self, new: &[NewKey]) {
        let mut cache = self.cache();
        for key in new {
            cache.put(key.subject.clone(), (key.key_id, key.key.clone()));
        }
    }

    /// Drops every cached key (after an erasure, which may have destroyed one).
    pub fn forget_all(&self) {
        self.cache().clear();
    }
}

/// Seals the personal fields of events about to be appended (see
/// `subdesk_projections::privacy`), with keys from `keyring`; returns the keys to store with
/// them.
pub async fn seal_events(
    keyring: &Keyring,
    pool: &Pool,
    events: &mut [SerializedEvent],
) -> Result<Vec<NewKey>, KeyringError> {
    let spots: Vec<_> = events
        .iter()
        .map(|e| privacy::fields::spots(&e.aggregate_type, &e.event_type, &e.payload, &e.metadata))
        .collect();
    let subjects: BTreeSet<String> = spots
        .iter()
        .flatten()
        .map(|spot| spot.subject.clone())
        .collect();
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let resolved = keyring.resolve(pool, &subjects).await?;
    for (event, spots) in events.iter_mut().zip(&spots) {
        seal::seal(
            &mut event.event_version,
            &mut event.payload,
            &mut event.metadata,
            spots,
            |subject| resolved.key_of(subject),
        )?;
    }
    Ok(resolved.new)
}

/// Opens events read from the log (see `seal::open`), with their keys read in one query.
pub async fn open_events(
    client: &impl GenericClient,
    events: &mut [SerializedEvent],
) -> Result<(), KeyringError> {
    let mut ids: Vec<Uuid> = Vec::new();
    for event in events.iter() {
        if !event.event_version.ends_with(privacy::SEALED_SUFFIX) {
            continue;
        }
        ids.extend(seal::key_ids(&event.payload, &event.metadata));
    }
    let mut keys = serde_json::Map::new();
    if !ids.is_empty() {
        ids.sort_unstable();
        ids.dedup();
        let rows = client
            .query(
                "SELECT key_id, wrapped FROM subject_keys WHERE key_id = ANY($1)",
                &[&ids],
            )
            .await?;
        for row in rows {
            let id: Uuid = row.try_get("key_id")?;
            let wrapped: Vec<u8> = row.try_get("wrapped")?;
            keys.insert(id.to_string(), Value::String(hex::encode(wrapped)));
        }
    }
    let keys = Value::Object(keys);
    for event in events.iter_mut() {
        seal::open(
            &mut event.event_version,
            &mut event.payload,
            &mut event.metadata,
            Some(&keys),
        )?;
    }
    Ok(())
}

/// Records this process's master key fingerprint in a database that has none, and refuses a
/// database whose keys another master key wraps.
pub async fn check_master(client: &impl GenericClient) -> Result<(), KeyringError> {
    let ours = privacy::master()?.fingerprint();
    client
        .execute(
            "INSERT INTO privacy_master (fingerprint) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&ours],
        )
        .await?;
    let stored: String = client
        .query_one("SELECT fingerprint FROM privacy_master", &[])
        .await?
        .try_get("fingerprint")?;
    if stored == ours {
        Ok(())
    } else {
        Err(KeyringError::OtherMaster { stored, ours })
    }
}
