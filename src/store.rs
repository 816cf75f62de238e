//! The event store behind every `CqrsFramework`: postgres-es's plain event repository, with
//! a cache of aggregate state by version in front.
//!
//! cqrs-es 0.5.0's snapshot and aggregate stores apply each new event twice (the
//! `EventSink` already applied it during `handle`), so they are not used. This store:
//! - loads an aggregate from the cache when it holds one, reading only the events appended
//!   after the cached version, so a command on a long stream costs the same as one on a short
//!   stream;
//! - appends a command's events with one `INSERT ... VALUES (...), (...) RETURNING` statement,
//!   which is its own transaction (a unique violation, whether a concurrent append or a reused
//!   idempotency key, comes back as a conflict), and learns the events' positions from it;
//!
//! The hot path (read the newer events, append) runs on tokio-postgres prepared statements
//! rather than postgres-es's repository, which sends the read with the version spliced into
//! the SQL text (a new statement to parse and plan for every version), and wraps the insert in
//! BEGIN / COMMIT round trips: with the append as one statement and its positions returned,
//! a command costs two round trips instead of about eight (see bench/RESULTS.md). The stored
//! rows are exactly the ones postgres-es writes; postgres-es still serves full-stream loads.
//! - caches the committed state at its new version (already applied by the sink);
//! - hands what it committed to the command path through a task-local [`CommandScope`], since
//!   `CqrsFramework::execute` returns nothing;
//! - runs the command path's access guard on the loaded state before `handle`, so that access
//!   checks see the same state the command is decided on, at no extra read.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use cqrs_es::persist::{
    EventStoreAggregateContext, EventUpcaster, PersistedEventRepository, SerializedEvent,
};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use deadpool_postgres::Pool;
use lru::LruCache;
use postgres_es::PostgresEventRepository;
use subdesk_aggregates::upcast::{upcast, upcasters_for};

use crate::privacy::keyring::{self, Keyring, KeyringError, NewKey};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

/// Why the command path's guard refused the loaded aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The aggregate does not exist, or the caller may not see it (the same thing to them).
    #[error("not found")]
    NotFound,
    /// The caller sees it but may not do this.
    #[error("{0}")]
    Forbidden(String),
}

/// An access check on the loaded aggregate, run before the command is handled.
pub type Guard<A> = Arc<dyn Fn(&A) -> Result<(), Denied> + Send + Sync>;

/// What a commit produced: the stream version it reached and the state at that version.
#[derive(Debug, Clone)]
pub struct Committed<A> {
    pub version: usize,
    pub appended: usize,
    pub state: A,
    /// Global position of the last appended event (`None` when nothing was appended).
    pub position: Option<i64>,
}

/// Per-command slots shared between the command path and this store.
#[derive(Default)]
pub struct CommandScope {
    pub guard: Option<Box<dyn Any + Send + Sync>>,
    pub committed: Option<Box<dyn Any + Send>>,
}

tokio::task_local! {
    pub static COMMAND_SCOPE: RefCell<CommandScope>;
}

/// Aggregate states by id, each with the stream version it reflects.
type StateCache<A> = Arc<Mutex<LruCache<String, (usize, A)>>>;

/// Bumped after every append of this process's command path. The projection runner watches
/// it: it wakes this process's projections at once and announces the appends to other
/// processes with one NOTIFY per few milliseconds, because the command connections append
/// without the events table's own NOTIFY (see `Target::without_append_notify`).
pub type Appends = Arc<tokio::sync::watch::Sender<u64>>;

/// The event store of one aggregate type. Clones share the repository and the cache.
pub struct CachedEventStore<A: Aggregate> {
    repo: Arc<PostgresEventRepository>,
    pool: Pool,
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
    cache: Option<StateCache<A>>,
    appends: Appends,
    keyring: Arc<Keyring>,
}

impl<A: Aggregate> Clone for CachedEventStore<A> {
    fn clone(&self) -> Self {
        Self {
            repo: Arc::clone(&self.repo),
            pool: self.pool.clone(),
            upcasters: Arc::clone(&self.upcasters),
            cache: self.cache.clone(),
            appends: Arc::clone(&self.appends),
            keyring: Arc::clone(&self.keyring),
        }
    }
}

impl<A: Aggregate + Clone + 'static> CachedEventStore<A> {
    /// `cache_capacity` aggregates are kept in memory; 0 disables the cache. `pool` runs the
    /// hot path (newer events, appends); `appends` is bumped after each append; `keyring`
    /// holds the data keys that seal personal data.
    pub fn new(
        repo: PostgresEventRepository,
        pool: Pool,
        cache_capacity: usize,
        appends: Appends,
        keyring: Arc<Keyring>,
    ) -> Self {
        Self {
            repo: Arc::new(repo),
            pool,
            upcasters: Arc::new(upcasters_for(A::TYPE)),
            cache: NonZeroUsize::new(cache_capacity)
                .map(|n| Arc::new(Mutex::new(LruCache::new(n)))),
            appends,
            keyring,
        }
    }

    fn cached(&self, aggregate_id: &str) -> Option<(usize, A)> {
        let cache = self.cache.as_ref()?;
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(aggregate_id).cloned()
    }

    /// Forgets every cached state (an erasure may have changed what the events read as).
    pub fn forget_all(&self) {
        if let Some(cache) = &self.cache {
            cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    fn remember(&self, aggregate_id: &str, version: usize, state: &A) {
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            // Never replace a newer entry (another command may have committed meanwhile).
            if cache.peek(aggregate_id).is_some_and(|(v, _)| *v > version) {
                return;
            }
            cache.put(aggregate_id.to_string(), (version, state.clone()));
        }
    }

    fn deserialize(
        &self,
        events: Vec<SerializedEvent>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        events
            .into_iter()
            .map(|event| {
                EventEnvelope::<A>::try_from(upcast(event, &self.upcasters))
                    .map_err(AggregateError::from)
            })
            .collect()
    }

    /// The state of an aggregate after its first `version` events (time travel by version,
    /// and rebuilding an idempotent response whose storing was interrupted).
    pub async fn load_at_version(
        &self,
        aggregate_id: &str,
        version: usize,
    ) -> Result<(usize, A), AggregateError<A::Error>> {
        let events = self.read_after(aggregate_id, 0).await?;
        let mut state = A::default();
        let mut reached = 0;
        for envelope in self.deserialize(events)? {
            if envelope.sequence > version {
                break;
            }
            reached = envelope.sequence;
            state.apply(envelope.payload);
        }
        Ok((reached, state))
    }
    /// The events of a stream after `version`, in order: one round trip on a prepared
    /// statement.
    async fn read_after(
        &self,
        aggregate_id: &str,
        version: usize,
    ) -> Result<Vec<SerializedEvent>, AggregateError<A::Error>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        // The wrapped keys of each sealed event come with it: one round trip.
        let statement = client
            .prepare_cached(concat!(
                "SELECT sequence, event_type, event_version, payload, metadata, ",
                subdesk_projections::sealed_keys_column!(),
                " FROM events \
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
                  ORDER BY sequence"
            ))
            .await
            .map_err(database_error)?;
        let after = i64::try_from(version).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&A::TYPE, &aggregate_id, &after])
            .await
            .map_err(database_error)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let read = || -> Result<_, tokio_postgres::Error> {
                Ok((
                    SerializedEvent::new(
                        aggregate_id.to_string(),
                        usize::try_from(row.try_get::<_, i64>("sequence")?).unwrap_or_default(),
                        A::TYPE.to_string(),
                        row.try_get("event_type")?,
                        row.try_get("event_version")?,
                        row.try_get("payload")?,
                        row.try_get("metadata")?,
                    ),
                    row.try_get::<_, Option<serde_json::Value>>("keys")?,
                ))
            };
            let (mut event, keys) = read().map_err(database_error)?;
            subdesk_projections::privacy::seal::open(
                &mut event.event_version,
                &mut event.payload,
                &mut event.metadata,
                keys.as_ref(),
            )
            .map_err(|e| keyring_error(KeyringError::Privacy(e)))?;
            events.push(event);
        }
        Ok(events)
    }

    /// Appends `events` (consecutive, of one stream) with one statement, which is its own
    /// transaction, and returns the position of the last one. The triggers of the events
    /// table run per row in order: each row's hash sees the row before it, the idempotency
    /// key is recorded with the first and moved along by the others, one NOTIFY.
    ///
    /// Data keys made for this append's subjects (`new_keys`) are inserted by the same
    /// statement, so a key commits with the first event that uses it, or not at all; two
    /// appends that made a key for the same new subject collide on `subject_keys.subject`
    /// like a lost race, and the retry finds the winner's key.
    async fn append(
        &self,
        events: &[SerializedEvent],
        new_keys: &[NewKey],
    ) -> Result<i64, AggregateError<A::Error>> {
        let offset = if new_keys.is_empty() { 0 } else { 3 };
        let mut sql = String::new();
        if offset > 0 {
            sql.push_str(
                "WITH new_keys AS (INSERT INTO subject_keys (key_id, subject, wrapped) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])) ",
            );
        }
        sql.push_str(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) VALUES ",
        );
        for i in 0..events.len() {
            let p = offset + i * 7;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            ));
        }
        sql.push_str(" RETURNING sequence, position");
        let sequences: Vec<i64> = events
            .iter()
            .map(|e| i64::try_from(e.sequence).unwrap_or(i64::MAX))
            .collect();
        let key_ids: Vec<uuid::Uuid> = new_keys.iter().map(|k| k.key_id).collect();
        let subjects: Vec<&str> = new_keys.iter().map(|k| k.digest.as_str()).collect();
        let wrapped: Vec<&[u8]> = new_keys.iter().map(|k| k.wrapped.as_slice()).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(offset + events.len() * 7);
        if offset > 0 {
            params.push(&key_ids);
            params.push(&subjects);
            params.push(&wrapped);
        }
        for (event, sequence) in events.iter().zip(&sequences) {
            params.push(&event.aggregate_type);
            params.push(&event.aggregate_id);
            params.push(sequence);
            params.push(&event.event_type);
            params.push(&event.event_version);
            params.push(&event.payload);
            params.push(&event.metadata);
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client.prepare_cached(&sql).await.map_err(database_error)?;
        let rows = client
            .query(&statement, &params)
            .await
            .map_err(database_error)?;
        let returned = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<_, i64>("sequence")?,
                    row.try_get::<_, i64>("position")?,
                ))
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(database_error)?;
        Ok(returned
            .into_iter()
            .max()
            .map_or(0, |(_, position)| position))
    }
}

/// A unique violation is a lost race (or a reused idempotency key): a conflict. A broken or
/// refused connection is "the database is unavailable".
fn database_error<E: std::error::Error>(error: tokio_postgres::Error) -> AggregateError<E> {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return AggregateError::AggregateConflict;
    }
    if is_connection_error(&error) {
        AggregateError::DatabaseConnectionError(Box::new(error))
    } else {
        AggregateError::UnexpectedError(Box::new(error))
    }
}

fn pool_error<E: std::error::Error>(error: deadpool_postgres::PoolError) -> AggregateError<E> {
    AggregateError::DatabaseConnectionError(Box::new(error))
}

fn keyring_error<E: std::error::Error>(error: KeyringError) -> AggregateError<E> {
    match error {
        KeyringError::Database(error) => database_error(error),
        KeyringError::Pool(error) => pool_error(error),
        other => AggregateError::UnexpectedError(Box::new(other)),
    }
}

/// Whether a tokio-postgres error means the server went away or refuses connections now
/// (closed connection, class 08 connection exception, class 57P operator intervention).
pub fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    error.is_closed()
        || error
            .code()
            .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"))
        || std::error::Error::source(error)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}

impl<A: Aggregate + Clone + 'static> EventStore<A> for CachedEventStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let mut events = self.repo.get_events::<A>(aggregate_id).await?;
        let client = self.pool.get().await.map_err(pool_error)?;
        keyring::open_events(&**client, &mut events)
            .await
            .map_err(keyring_error)?;
        self.deserialize(events)
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        let (mut version, mut aggregate) = self.cached(aggregate_id).unwrap_or_default();
        let newer = self.read_after(aggregate_id, version).await?;
        let touched = !newer.is_empty();
        for envelope in self.deserialize(newer)? {
            version = envelope.sequence;
            aggregate.apply(envelope.payload);
        }
        if touched {
            self.remember(aggregate_id, version, &aggregate);
        }
        let denied = COMMAND_SCOPE
            .try_with(|scope| {
                let scope = scope.borrow();
                let guard = scope.guard.as_ref()?.downcast_ref::<Guard<A>>()?;
                guard(&aggregate).err()
            })
            .ok()
            .flatten();
        if let Some(denied) = denied {
            return Err(AggregateError::UnexpectedError(Box::new(denied)));
        }
        Ok(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate,
            current_sequence: version,
            current_snapshot: None,
        })
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let aggregate_id = context.aggregate_id;
        let start = context.current_sequence;
        let envelopes: Vec<EventEnvelope<A>> = events
            .into_iter()
            .enumerate()
            .map(|(i, payload)| EventEnvelope {
                aggregate_id: aggregate_id.clone(),
                sequence: start + i + 1,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        let mut position = None;
        if !envelopes.is_empty() {
            let mut serialized = envelopes
                .iter()
                .map(SerializedEvent::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            let new_keys = keyring::seal_events(&self.keyring, &self.pool, &mut serialized)
                .await
                .map_err(keyring_error)?;
            position = Some(self.append(&serialized, &new_keys).await?);
            self.keyring.remember(&new_keys);
            self.appends.send_modify(|n| *n = n.wrapping_add(1));
        }
        let version = start + envelopes.len();
        // The sink applied the new events to the context's aggregate during `handle`.
        let state = context.aggregate;
        if !envelopes.is_empty() {
            self.remember(&aggregate_id, version, &state);
        }
        let _ = COMMAND_SCOPE.try_with(|scope| {
            scope.borrow_mut().committed = Some(Box::new(Committed {
                version,
                appended: envelopes.len(),
                state,
                position,
            }));
        });
        Ok(envelopes)
    }
}
