//! The event store behind every `CqrsFramework`: postgres-es's plain event repository, with
//! a cache of aggregate state by version in front.
//!
//! cqrs-es 0.5.0's snapshot and aggregate stores apply each new event twice (the
//! `EventSink` already applied it during `handle`), so they are not used. This store:
//! - loads an aggregate from the cache when it holds one, reading only the events appended
//!   after the cached version (`get_last_events`), so a command on a long stream costs the
//!   same as one on a short stream;
//! - commits through `PostgresEventRepository::persist` (one transaction; a unique violation,
//!   whether a concurrent append or a reused idempotency key, comes back as a conflict);
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
use lru::LruCache;
use postgres_es::PostgresEventRepository;
use subdesk_aggregates::upcast::{upcast, upcasters_for};

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

/// The event store of one aggregate type. Clones share the repository and the cache.
pub struct CachedEventStore<A: Aggregate> {
    repo: Arc<PostgresEventRepository>,
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
    cache: Option<StateCache<A>>,
}

impl<A: Aggregate> Clone for CachedEventStore<A> {
    fn clone(&self) -> Self {
        Self {
            repo: Arc::clone(&self.repo),
            upcasters: Arc::clone(&self.upcasters),
            cache: self.cache.clone(),
        }
    }
}

impl<A: Aggregate + Clone + 'static> CachedEventStore<A> {
    /// `cache_capacity` aggregates are kept in memory; 0 disables the cache.
    pub fn new(repo: PostgresEventRepository, cache_capacity: usize) -> Self {
        Self {
            repo: Arc::new(repo),
            upcasters: Arc::new(upcasters_for(A::TYPE)),
            cache: NonZeroUsize::new(cache_capacity)
                .map(|n| Arc::new(Mutex::new(LruCache::new(n)))),
        }
    }

    fn cached(&self, aggregate_id: &str) -> Option<(usize, A)> {
        let cache = self.cache.as_ref()?;
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(aggregate_id).cloned()
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
        let events = self.repo.get_events::<A>(aggregate_id).await?;
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
}

impl<A: Aggregate + Clone + 'static> EventStore<A> for CachedEventStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let events = self.repo.get_events::<A>(aggregate_id).await?;
        self.deserialize(events)
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        let (mut version, mut aggregate) = self.cached(aggregate_id).unwrap_or_default();
        let newer = self
            .repo
            .get_last_events::<A>(aggregate_id, version)
            .await?;
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
        if !envelopes.is_empty() {
            let serialized = envelopes
                .iter()
                .map(SerializedEvent::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            self.repo.persist::<A>(&serialized, None).await?;
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
            }));
        });
        Ok(envelopes)
    }
}
