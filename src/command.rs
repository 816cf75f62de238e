//! The command path: one `CqrsFramework` per aggregate, wrapped so that every command
//! - carries its metadata (actor and role, request, correlation, causation, idempotency key)
//!   into every event it appends,
//! - is retried with jitter when another writer appended to the stream first
//!   (`AggregateConflict`), then answered 409 if it still collides,
//! - reports the stream version and global position it reached, for read-your-writes (the
//!   store returns the position from the append itself; only a command that appended
//!   nothing looks it up).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use deadpool_postgres::Pool;
use postgres_es::PostgresEventRepository;
use rand::Rng;
use subdesk_aggregates::{Actor, ActorRole};

use crate::idempotency::{self, IdempotencyKey, KeyRecord};
use crate::store::{
    Appends, CachedEventStore, CommandScope, Committed, Denied, Guard, COMMAND_SCOPE,
};

/// Attempts before a conflict is given up and reported.
const MAX_ATTEMPTS: u32 = 6;

/// Who asked, and the request the command belongs to.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub actor: Actor,
    pub request_id: String,
    pub correlation_id: String,
    /// What caused this command: the request for API calls, the triggering event for
    /// commands issued by the scheduler or a process manager.
    pub causation_id: String,
    pub idempotency: Option<IdempotencyKey>,
}

impl CommandMeta {
    /// Metadata of a command the system issues by itself, caused by `cause`.
    pub fn system(cause: impl Into<String>) -> Self {
        let request_id = uuid::Uuid::now_v7().to_string();
        let cause = cause.into();
        Self {
            actor: Actor::system(),
            correlation_id: cause.clone(),
            causation_id: cause,
            request_id,
            idempotency: None,
        }
    }

    pub(crate) fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            ("actor_id".to_string(), self.actor.id.clone()),
            (
                "actor_role".to_string(),
                self.actor.role.as_str().to_string(),
            ),
            ("request_id".to_string(), self.request_id.clone()),
            ("correlation_id".to_string(), self.correlation_id.clone()),
            ("causation_id".to_string(), self.causation_id.clone()),
        ]);
        if let Some(key) = &self.idempotency {
            map.insert("idempotency_key".into(), key.key.clone());
            map.insert("idempotency_scope".into(), key.scope.clone());
            map.insert("request_hash".into(), key.request_hash.clone());
        }
        map
    }

    pub fn role(&self) -> ActorRole {
        self.actor.role
    }
}

/// The result of an accepted command.
#[derive(Debug, Clone)]
pub struct Outcome<A> {
    pub aggregate_id: String,
    /// The stream version (sequence of its last event) after the command.
    pub version: usize,
    /// Events the command appended (0 when it changed nothing).
    pub appended: usize,
    /// Global position of the command's last event (of the stream's last event when it
    /// appended nothing; 0 for an empty stream). Pass it as `min_position` to read your write.
    pub position: i64,
    pub state: A,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// A domain rule refused the command (422).
    #[error(transparent)]
    Rejected(E),
    /// The caller may not see the aggregate (404) or may not do this (403).
    #[error(transparent)]
    Denied(Denied),
    /// Concurrent writers kept winning (409).
    #[error("the {0} kept changing while this command was applied; retry")]
    Conflict(&'static str),
    /// Another request with the same idempotency key was accepted first.
    #[error("idempotency key already used")]
    AlreadyAccepted(KeyRecord),
    /// The database cannot be reached (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database asked for the command to be tried again (timeout, serialization or
    /// deadlock, lock wait, read-only after a failover, out of connections): 503.
    #[error("{detail}")]
    Retry { code: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The command path of one aggregate type.
pub struct CommandBus<A: Aggregate + Clone + 'static> {
    cqrs: CqrsFramework<A, CachedEventStore<A>>,
    store: CachedEventStore<A>,
    pool: Pool,
}

impl<A> CommandBus<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone,
    A::Error: Clone + 'static,
{
    pub fn new(
        sqlx: sqlx::PgPool,
        pool: Pool,
        services: A::Services,
        cache_capacity: usize,
        appends: Appends,
        keyring: std::sync::Arc<crate::privacy::Keyring>,
    ) -> Self {
        let store = CachedEventStore::new(
            PostgresEventRepository::new(sqlx),
            pool.clone(),
            cache_capacity,
            appends,
            keyring,
        );
        Self {
            cqrs: CqrsFramework::new(store.clone(), Vec::new(), services),
            store,
            pool,
        }
    }

    /// Forgets every cached aggregate state (an erasure changed what events read as).
    pub fn forget_cached(&self) {
        self.store.forget_all();
    }

    /// Handles `command` on aggregate `id`. `guard` runs on the loaded state before the
    /// command; an error from it refuses the command without appending anything.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        meta: &CommandMeta,
        guard: Option<Guard<A>>,
    ) -> Result<Outcome<A>, CommandError<A::Error>> {
        let metadata = meta.to_map();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let scope = CommandScope {
                guard: guard
                    .clone()
                    .map(|g| Box::new(g) as Box<dyn std::any::Any + Send + Sync>),
                committed: None,
            };
            let result = COMMAND_SCOPE
                .scope(RefCell::new(scope), async {
                    let result = self
                        .cqrs
                        .execute_with_metadata(id, command.clone(), metadata.clone())
                        .await;
                    let committed = COMMAND_SCOPE.with(|scope| scope.borrow_mut().committed.take());
                    (result, committed)
                })
                .await;
            match result {
                (Ok(()), Some(committed)) => {
                    let committed = committed.downcast::<Committed<A>>().map_err(|_| {
                        CommandError::Internal("commit record of another aggregate type".into())
                    })?;
                    let position = match committed.position {
                        Some(position) => position,
                        None => self.position_of(id, committed.version).await?,
                    };
                    metrics::counter!("subdesk_commands_total", "aggregate" => A::TYPE, "result" => "accepted").increment(1);
                    return Ok(Outcome {
                        aggregate_id: id.to_string(),
                        version: committed.version,
                        appended: committed.appended,
                        position,
                        state: committed.state,
                    });
                }
                (Ok(()), None) => {
                    return Err(CommandError::Internal(
                        "the store did not report the commit".into(),
                    ))
                }
                (Err(AggregateError::AggregateConflict), _) => {
                    metrics::counter!("subdesk_command_conflicts_total", "aggregate" => A::TYPE)
                        .increment(1);
                    if let Some(key) = &meta.idempotency {
                        if let Some(record) = idempotency::find(&self.pool, key)
                            .await
                            .map_err(unavailable)?
                        {
                            return Err(CommandError::AlreadyAccepted(record));
                        }
                    }
                    if attempt >= MAX_ATTEMPTS {
                        return Err(CommandError::Conflict(A::TYPE));
                    }
                    // Full jitter on an exponential window: 2, 4, 8, 16, 32 ms.
                    let window = 2u64 << attempt.min(5);
                    let pause = rand::rng().random_range(0..=window * 1000);
                    tokio::time::sleep(Duration::from_micros(pause)).await;
                }
                (Err(error), _) => {
                    let error = classify(error);
                    let result = match &error {
                        CommandError::Rejected(_) => "rejected",
                        CommandError::Denied(_) => "denied",
                        _ => "failed",
                    };
                    metrics::counter!("subdesk_commands_total", "aggregate" => A::TYPE, "result" => result).increment(1);
                    return Err(error);
                }
            }
        }
    }

    /// The current state of aggregate `id` and its version, from the cache plus the events
    /// appended since (a default state at version 0 when the stream does not exist).
    pub async fn current(&self, id: &str) -> Result<(usize, A), CommandError<A::Error>> {
        use cqrs_es::{AggregateContext, EventStore};
        let mut context = self.store.load_aggregate(id).await.map_err(classify)?;
        let version = context.current_sequence;
        Ok((version, std::mem::take(context.aggregate())))
    }

    /// The state after the first `version` events, and the version actually reached.
    pub async fn load_at_version(
        &self,
        id: &str,
        version: usize,
    ) -> Result<(usize, A), CommandError<A::Error>> {
        self.store
            .load_at_version(id, version)
            .await
            .map_err(classify)
    }

    async fn position_of(&self, id: &str, version: usize) -> Result<i64, CommandError<A::Error>> {
        if version == 0 {
            return Ok(0);
        }
        let client = self.pool.get().await.map_err(unavailable)?;
        let statement = client
            .prepare_cached(
                "SELECT position FROM events \
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
            )
            .await
            .map_err(unavailable)?;
        let row = client
            .query_opt(&statement, &[&A::TYPE, &id, &(version as i64)])
            .await
            .map_err(unavailable)?;
        row.map_or(Ok(0), |row| row.try_get("position"))
            .map_err(|error| CommandError::Internal(format!("events row: {error}")))
    }
}

fn unavailable<E: std::error::Error, D: std::fmt::Display>(error: D) -> CommandError<E> {
    CommandError::Unavailable(error.to_string())
}

/// Sorts a cqrs-es error into what the caller is told.
fn classify<E: std::error::Error + Clone + 'static>(error: AggregateError<E>) -> CommandError<E> {
    match error {
        AggregateError::UserError(e) => CommandError::Rejected(e),
        AggregateError::AggregateConflict => CommandError::Conflict("aggregate"),
        AggregateError::DatabaseConnectionError(e) => CommandError::Unavailable(e.to_string()),
        AggregateError::DeserializationError(e) => {
            CommandError::Internal(format!("stored event cannot be read: {e}"))
        }
        AggregateError::UnexpectedError(e) => {
            if let Some(denied) = e.downcast_ref::<Denied>() {
                return CommandError::Denied(denied.clone());
            }
            if let Some(code) = retryable(e.as_ref()) {
                return CommandError::Retry {
                    code,
                    detail: e.to_string(),
                };
            }
            if is_unavailable(e.as_ref()) {
                CommandError::Unavailable(e.to_string())
            } else {
                CommandError::Internal(e.to_string())
            }
        }
    }
}

/// The retry code of an error from either client library, if the database asked for a retry.
fn retryable(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if let Some(error) = error.downcast_ref::<tokio_postgres::Error>() {
        return crate::db::retryable_code(error);
    }
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => crate::db::retryable_sqlstate(db.code()?.as_ref()),
        _ => None,
    }
}

/// Whether an error from either client library means "the database is not reachable right
/// now".
fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(error) = error.downcast_ref::<tokio_postgres::Error>() {
        return crate::store::is_connection_error(error);
    }
    if error
        .downcast_ref::<deadpool_postgres::PoolError>()
        .is_some()
    {
        return true;
    }
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => true,
        Some(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}
